//! One local redis-server or redis-sentinel process on loopback, killed on Drop; where the
//! binaries and hive-module are found; free port pairs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hive_common::addr;
use hive_upstream::conn::control::{query, QueryError};

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
    /// In a process group of its own, so a terminal's Ctrl-C reaches only its parent.
    own_group: bool,
    /// A redis-server's pid file: a drill may start the node again (`restart.rs`), and Drop
    /// stops that process too.
    pid_file: Option<PathBuf>,
}

impl RedisProcess {
    /// Starts redis-server on 127.0.0.1:`port` with `extra` config arguments (`--name value`
    /// pairs) and waits until it answers PING.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        RedisProcess::start_on(dir, "127.0.0.1", port, extra)
    }

    /// Like `start`, in a process group of its own: a Ctrl-C at the terminal stops the parent
    /// (which then decides what to do with this server) but not the server itself.
    pub fn start_own_group(dir: &Path, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        RedisProcess::start_impl(dir, "127.0.0.1", port, extra, true, &[])
    }

    /// Starts redis-server on `host` (a loopback address: `127.0.0.1`, `::1`).
    pub fn start_on(dir: &Path, host: &str, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        RedisProcess::start_impl(dir, host, port, extra, false, &[])
    }

    /// Starts redis-server on `host` through `ip <prefix…>` (`netns exec NS`: inside a
    /// network namespace of a fault test; the caller must be able to reach `host`).
    pub fn start_via_ip(
        prefix: &[String],
        dir: &Path,
        host: &str,
        port: u16,
        extra: &[&str],
    ) -> Result<RedisProcess> {
        RedisProcess::start_impl(dir, host, port, extra, false, prefix)
    }

    /// Starts `bin` with `args` (through `ip <prefix…>` when `prefix` is not empty) and waits
    /// until `host:port` answers PING.
    pub fn start_cmd(
        prefix: &[String],
        bin: String,
        dir: &Path,
        host: &str,
        port: u16,
        args: Vec<String>,
    ) -> Result<RedisProcess> {
        let (bin, args) = with_prefix(prefix, bin, args);
        RedisProcess::spawn_new(bin, dir, host, port, args, false)
    }

    fn start_impl(
        dir: &Path,
        host: &str,
        port: u16,
        extra: &[&str],
        own_group: bool,
        prefix: &[String],
    ) -> Result<RedisProcess> {
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
            // Nodes may share a directory (hive up, the tests): each keeps its own RDB and AOF.
            "--dbfilename",
            &format!("dump-{port}.rdb"),
            "--appenddirname",
            &format!("appendonlydir-{port}"),
            "--pidfile",
            &crate::restart::pid_file(dir, port).display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let pid_file = crate::restart::pid_file(dir, port);
        let (bin, args) = with_prefix(prefix, redis_server_bin(), args);
        crate::restart::record(&pid_file, &bin, &args)?;
        let mut p = RedisProcess::spawn_new(bin, dir, host, port, args, own_group)?;
        p.pid_file = Some(pid_file);
        Ok(p)
    }

    /// Starts `bin` with `args` and waits until port `port` answers PING (an auth error
    /// counts as an answer).
    pub fn start_with(
        bin: String,
        dir: &Path,
        port: u16,
        args: Vec<String>,
    ) -> Result<RedisProcess> {
        RedisProcess::spawn_new(bin, dir, "127.0.0.1", port, args, false)
    }

    fn spawn_new(
        bin: String,
        dir: &Path,
        host: &str,
        port: u16,
        args: Vec<String>,
        own_group: bool,
    ) -> Result<RedisProcess> {
        let mut p = RedisProcess {
            port,
            addr: addr::join(host, port),
            dir: dir.into(),
            bin,
            args,
            child: None,
            own_group,
            pid_file: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = self.bin.clone();
        let mut cmd = Command::new(&bin);
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd
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

/// `ip prefix… bin args…` when there is a prefix, else `bin args…`.
fn with_prefix(prefix: &[String], bin: String, args: Vec<String>) -> (String, Vec<String>) {
    if prefix.is_empty() {
        return (bin, args);
    }
    let mut all = prefix.to_vec();
    all.push(bin);
    all.extend(args);
    ("ip".into(), all)
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        if let Some(p) = &self.pid_file {
            crate::restart::kill_restarted(p, self.port);
        }
    }
}

/// A free port on 127.0.0.1 whose cluster bus port (`port + 10000`) is free too.
pub fn free_port_pair() -> Result<u16> {
    free_port_pair_on("127.0.0.1")
}

/// A free port on loopback address `host` whose cluster bus port is free too.
pub fn free_port_pair_on(host: &str) -> Result<u16> {
    free_port_block_on(host, 1)
}

/// The first of `n` consecutive free ports on 127.0.0.1, each with its bus port free too.
pub fn free_port_block(n: u16) -> Result<u16> {
    free_port_block_on("127.0.0.1", n)
}

/// Ports are handed out from below the kernel's ephemeral range, never from it: a port taken
/// from the ephemeral range (bind to port 0) is free when chosen, but before its node binds
/// it an outgoing connection (a replica's, a sentinel's, a cluster bus link's) can take it as
/// its local port, and the node then fails with "Address already in use". Within a process a
/// counter keeps concurrent tests apart; across processes the start is offset by the pid.
pub fn free_port_block_on(host: &str, n: u16) -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = port_range();
    let span = u32::from(high - low);
    if n == 0 || u32::from(n) > span {
        bail!("cannot allocate {n} consecutive ports");
    }
    let offset = std::process::id().wrapping_mul(997);
    let slots = span - u32::from(n) + 1;
    for _ in 0..(span / u32::from(n)).min(2000) {
        let k = NEXT.fetch_add(u32::from(n), Ordering::Relaxed);
        let base = offset.wrapping_add(k) % slots;
        let base = low + base as u16;
        let free = (0..n).all(|i| {
            TcpListener::bind((host, base + i)).is_ok()
                && TcpListener::bind((host, base + i + 10000)).is_ok()
        });
        if free {
            return Ok(base);
        }
    }
    bail!("no block of {n} free loopback ports found on {host}")
}

/// `[low, high)`: ports whose bus ports (`+ 10000`) lie above them and below the ephemeral
/// range, so no port handed out is another one's bus port.
fn port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.saturating_sub(10000).max(2025);
    (high.saturating_sub(10000).max(1025), high)
}
