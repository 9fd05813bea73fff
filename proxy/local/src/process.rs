//! One local redis-server or redis-sentinel process on loopback, killed on Drop; where the
//! binaries and hive-module are found; free port pairs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hive_common::addr;
use hive_proxy::upstream::control::{query, QueryError};

use crate::wait::block_on;

/// The redis-server binary: `$HIVE_REDIS_SERVER`, else `redis-server` from PATH.
pub fn redis_server_bin() -> String {
    std::env::var("HIVE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// The hive-module library to load: `$HIVE_MODULE`, else `libhive_module.so` beside the running
/// `hive` binary (where `cargo build` puts both). `None` if it is not built.
pub fn module_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("HIVE_MODULE") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let so = exe.parent()?.join("libhive_module.so");
    so.exists().then_some(so)
}

/// The redis-sentinel binary: `$HIVE_REDIS_SENTINEL`, else `redis-sentinel` from PATH.
pub fn redis_sentinel_bin() -> String {
    std::env::var("HIVE_REDIS_SENTINEL").unwrap_or_else(|_| "redis-sentinel".into())
}

/// One redis-server (or redis-sentinel) child process, killed on Drop.
pub struct RedisProcess {
    pub port: u16,
    pub addr: String,
    pub dir: PathBuf,
    bin: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts redis-server on 127.0.0.1:`port` with `extra` config arguments (`--name value`
    /// pairs) and waits until it answers PING.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        RedisProcess::start_on(dir, "127.0.0.1", port, extra)
    }

    /// Starts redis-server on `host` (a loopback address: `127.0.0.1`, `::1`).
    pub fn start_on(dir: &Path, host: &str, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        std::fs::create_dir_all(dir)?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            host,
            "--dir",
            &dir.display().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            &format!("redis-{port}.log"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        RedisProcess::spawn_new(redis_server_bin(), dir, host, port, args)
    }

    /// Starts `bin` with `args` and waits until port `port` answers PING (an auth error
    /// counts as an answer).
    pub fn start_with(
        bin: String,
        dir: &Path,
        port: u16,
        args: Vec<String>,
    ) -> Result<RedisProcess> {
        RedisProcess::spawn_new(bin, dir, "127.0.0.1", port, args)
    }

    fn spawn_new(
        bin: String,
        dir: &Path,
        host: &str,
        port: u16,
        args: Vec<String>,
    ) -> Result<RedisProcess> {
        let mut p = RedisProcess {
            port,
            addr: addr::join(host, port),
            dir: dir.into(),
            bin,
            args,
            child: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = self.bin.clone();
        let child = Command::new(&bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("cannot run `{bin}`; install redis-server or set HIVE_REDIS_SERVER")
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match block_on(query(&self.addr, &["PING"], Duration::from_millis(500))) {
                Ok(_) | Err(QueryError::Redis { .. }) => return Ok(()),
                Err(_) => {}
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!(
                        "redis-server on port {} exited: {status}; see {}/redis-{}.log",
                        self.port,
                        self.dir.display(),
                        self.port
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server on port {} did not answer PING within 10 s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same arguments (and, in cluster mode, nodes.conf).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port on 127.0.0.1 whose cluster bus port (`port + 10000`) is free too.
pub fn free_port_pair() -> Result<u16> {
    free_port_pair_on("127.0.0.1")
}

/// A free port on loopback address `host` whose cluster bus port is free too.
pub fn free_port_pair_on(host: &str) -> Result<u16> {
    for _ in 0..200 {
        let l = TcpListener::bind((host, 0))?;
        let port = l.local_addr()?.port();
        if port > 55535 {
            continue;
        }
        if TcpListener::bind((host, port + 10000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free pair of loopback ports found on {host}")
}
