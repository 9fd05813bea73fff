//! Test harness: real redis-server clusters on free loopback ports with a Hive proxy in front,
//! all torn down on Drop; plus small client helpers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hive_proxy::config::Config;
use hive_proxy::localcluster::{ClusterOpts, LocalCluster, RedisProcess};
use hive_proxy::server::ProxyHandle;
use tempfile::TempDir;

pub use hive_proxy::localcluster::{block_on, free_port_pair, info_field};

/// Load tests take this lock so two of them never compete for the 2 cores.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cluster with a proxy in front. Field order matters: the proxy stops before the nodes.
pub struct Env {
    pub proxy: ProxyHandle,
    pub cluster: LocalCluster,
    pub dir: TempDir,
}

impl Env {
    /// 3 masters + 1 replica each, cluster-node-timeout 2000 ms.
    pub fn cluster() -> Env {
        Env::with(3, 1, |_| {})
    }

    pub fn with(masters: usize, replicas: usize, tweak: impl FnOnce(&mut Config)) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("hive-test-")
            .tempdir()
            .expect("tempdir");
        let cluster = LocalCluster::start(&ClusterOpts {
            masters,
            replicas,
            base_port: None,
            node_timeout_ms: 2000,
            dir: dir.path().to_path_buf(),
            extra: Vec::new(),
        })
        .expect("start the local cluster");
        let mut config = Config::default();
        config.proxy.listen = "127.0.0.1:0".into();
        config.proxy.threads = 2;
        config.backend.seeds = cluster.master_addrs();
        tweak(&mut config);
        let proxy = ProxyHandle::start(config).expect("start the proxy");
        Env {
            proxy,
            cluster,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.proxy.addr)
    }

    pub fn client(&self) -> redis::Connection {
        connect(&self.url())
    }

    pub fn port(&self) -> u16 {
        self.proxy.addr.port()
    }
}

pub fn connect(url: &str) -> redis::Connection {
    let c = redis::Client::open(url).expect("valid url");
    let conn = c
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn
}

pub fn node_url(addr: &str) -> String {
    format!("redis://{addr}/")
}

/// A single standalone redis-server with cluster support enabled (CLUSTER KEYSLOT works).
pub fn single_node(dir: &TempDir, cluster_enabled: bool) -> RedisProcess {
    let port = free_port_pair().expect("port");
    let extra: Vec<&str> = if cluster_enabled {
        vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "single-nodes.conf",
        ]
    } else {
        vec![]
    };
    RedisProcess::start(dir.path(), port, &extra).expect("start redis-server")
}

/// Runs redis-cli with `args`; returns stdout.
pub fn redis_cli(args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .context("run redis-cli")?;
    if !out.status.success() {
        bail!(
            "redis-cli {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `hive` binary built by `cargo build` (the test script builds it first).
pub fn hive_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/hive
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("hive")
}
