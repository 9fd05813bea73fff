//! How a local node is started again after a crash drill: each redis-server this crate starts
//! records its command line beside its pid file, so `hive drill failover --kill` can start
//! the killed node as it was (redis-server overwrites its own argv with a process title, so
//! `/proc` cannot tell). A node started again that way is no child of its `RedisProcess`;
//! the pid file lets that process's Drop stop it all the same.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The pid file a node started by this crate writes (`--pidfile`): absolute, as redis-server
/// changes into its `dir` before it writes it.
pub fn pid_file(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join(format!("redis-{port}.pid"));
    std::path::absolute(&p).unwrap_or(p)
}

/// Where the node whose pid file is `pid_file` keeps its start command.
pub fn recipe_file(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("start")
}

/// Records `bin args…` (run from the current directory) for `recipe_file`; owner-only, as
/// the arguments may carry a password.
pub fn record(pid_file: &Path, bin: &str, args: &[String]) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let mut text = Vec::new();
    for part in std::iter::once(cwd.display().to_string())
        .chain(std::iter::once(bin.to_string()))
        .chain(args.iter().cloned())
    {
        text.extend_from_slice(part.as_bytes());
        text.push(0);
    }
    let path = recipe_file(pid_file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_owner_only()
        .open(&path)
        .with_context(|| format!("write {}", path.display()))?;
    f.write_all(&text)?;
    Ok(())
}

trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for std::fs::OpenOptions {
    fn mode_owner_only(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Starts the node recorded for `pid_file` again, detached (its own process group, no
/// terminal), and returns its pid.
pub fn start_again(pid_file: &Path) -> Result<u32> {
    let path = recipe_file(pid_file);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "no start command recorded at {} (only nodes started by `hive up` or hive-local can be restarted)",
            path.display()
        )
    })?;
    let parts: Vec<String> = text
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let [cwd, bin, args @ ..] = parts.as_slice() else {
        bail!("{} is not a start command", path.display());
    };
    let mut cmd = Command::new(bin);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {bin}"))?;
    Ok(child.id())
}

/// Kills the process named in `pid_file` if it is still a redis process on `port` (a node
/// started again by a drill); the check keeps a stale pid file from naming a stranger.
pub fn kill_restarted(pid_file: &Path, port: u16) {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = pid.trim();
    let Ok(title) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let title = String::from_utf8_lossy(&title);
    if title.starts_with("redis-") && title.contains(&format!(":{port}")) {
        let _ = Command::new("kill").args(["-9", pid]).status();
        let _ = std::fs::remove_file(pid_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_recipe_round_trips_and_is_owner_only() {
        let dir = tempfile_dir();
        let pid = pid_file(&dir, 7001);
        record(&pid, "/bin/true", &["--port".into(), "7001".into()]).unwrap();
        let meta = std::fs::metadata(recipe_file(&pid)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        assert!(start_again(&pid).unwrap() > 0);
        let e = start_again(&pid_file(&dir, 1)).unwrap_err().to_string();
        assert!(e.starts_with("no start command recorded at"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hive-restart-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
