//! Local Redis processes for `hive up` and the tests: start redis-server on free loopback ports,
//! form a cluster (masters + replicas), and kill everything on Drop. CLI support code, so it
//! reports errors with `anyhow`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hive_common::topology::ShardMap;

use crate::upstream::query::{query, Conn, QueryError};

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
    /// Starts redis-server on `port` with `extra` config arguments (`--name value` pairs) and
    /// waits until it answers PING.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Result<RedisProcess> {
        std::fs::create_dir_all(dir)?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
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
        RedisProcess::start_with(redis_server_bin(), dir, port, args)
    }

    /// Starts `bin` with `args` and waits until port `port` answers PING (an auth error
    /// counts as an answer).
    pub fn start_with(
        bin: String,
        dir: &Path,
        port: u16,
        args: Vec<String>,
    ) -> Result<RedisProcess> {
        let mut p = RedisProcess {
            port,
            addr: format!("127.0.0.1:{port}"),
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

/// A free loopback port whose cluster bus port (`port + 10000`) is free too.
pub fn free_port_pair() -> Result<u16> {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if port > 55535 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free pair of loopback ports found")
}

#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub masters: usize,
    pub replicas: usize,
    /// First port (ports are consecutive); `None` picks free ports.
    pub base_port: Option<u16>,
    pub node_timeout_ms: u64,
    pub dir: PathBuf,
    /// Extra redis-server arguments for every node.
    pub extra: Vec<String>,
}

/// A running Redis Cluster; nodes `0..masters` start as masters, the rest as their replicas
/// (replica `j` of master `i` is node `masters + i * replicas + j`).
pub struct LocalCluster {
    pub nodes: Vec<RedisProcess>,
    pub masters: usize,
}

impl LocalCluster {
    pub fn start(opts: &ClusterOpts) -> Result<LocalCluster> {
        let total = opts.masters * (1 + opts.replicas);
        let mut nodes = Vec::with_capacity(total);
        for i in 0..total {
            let port = match opts.base_port {
                Some(b) => b + i as u16,
                None => free_port_pair()?,
            };
            let conf = format!("nodes-{port}.conf");
            let timeout = opts.node_timeout_ms.to_string();
            let mut extra: Vec<&str> = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-node-timeout",
                &timeout,
            ];
            extra.extend(opts.extra.iter().map(String::as_str));
            nodes.push(RedisProcess::start(&opts.dir, port, &extra)?);
        }
        let cluster = LocalCluster {
            nodes,
            masters: opts.masters,
        };
        block_on(cluster.form(opts.replicas))?;
        Ok(cluster)
    }

    pub fn master_addrs(&self) -> Vec<String> {
        self.nodes[..self.masters]
            .iter()
            .map(|n| n.addr.clone())
            .collect()
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    async fn form(&self, replicas: usize) -> Result<()> {
        let t = Duration::from_secs(5);
        let ranges = ShardMap::even_ranges(self.masters);
        for (i, r) in ranges.iter().enumerate() {
            let mut c = Conn::connect(&self.nodes[i].addr, t).await?;
            c.call(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &r.start.to_string(),
                &r.end.to_string(),
            ])
            .await?;
            c.call(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .await?;
        }
        let mut first = Conn::connect(&self.nodes[0].addr, t).await?;
        for n in &self.nodes[1..] {
            first
                .call(&["CLUSTER", "MEET", "127.0.0.1", &n.port.to_string()])
                .await?;
        }
        let total = self.nodes.len();
        wait_until(
            "every node to know every other",
            Duration::from_secs(20),
            || async {
                for n in &self.nodes {
                    let v = query(&n.addr, &["CLUSTER", "NODES"], t).await?;
                    let text = v.as_str().unwrap_or("");
                    if text.lines().filter(|l| !l.contains("handshake")).count() < total {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .await?;
        for i in 0..self.masters {
            let id = query(&self.nodes[i].addr, &["CLUSTER", "MYID"], t).await?;
            let id = id
                .as_str()
                .ok_or_else(|| anyhow!("bad CLUSTER MYID reply"))?
                .to_string();
            for j in 0..replicas {
                let r = &self.nodes[self.masters + i * replicas + j];
                wait_until(
                    "replica to accept CLUSTER REPLICATE",
                    Duration::from_secs(10),
                    || async {
                        Ok(query(&r.addr, &["CLUSTER", "REPLICATE", &id], t)
                            .await
                            .is_ok())
                    },
                )
                .await?;
            }
        }
        self.wait_healthy(Duration::from_secs(30)).await
    }

    /// Waits until every running node reports `cluster_state:ok` and every replica's link is up.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let t = Duration::from_secs(2);
        wait_until("the cluster to become healthy", limit, || async {
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let info = query(&n.addr, &["CLUSTER", "INFO"], t).await?;
                if !info.as_str().unwrap_or("").contains("cluster_state:ok") {
                    return Ok(false);
                }
                let repl = query(&n.addr, &["INFO", "replication"], t).await?;
                let repl = repl.as_str().unwrap_or("");
                if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
    }

    /// Blocking form of `wait_healthy`, for synchronous callers.
    pub fn wait_healthy_blocking(&self, limit: Duration) -> Result<()> {
        block_on(self.wait_healthy(limit))
    }
}

/// Polls `check` every 50 ms until it returns true, failing after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            let why = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {limit:?} waiting for {what}{why}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a future to completion on a private current-thread runtime (setup code only).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime can always be built")
        .block_on(f)
}

/// Reads a field from INFO-style text (`name:value` lines).
pub fn info_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|s| s.trim().to_string())
}
