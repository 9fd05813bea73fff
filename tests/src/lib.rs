//! Test harness: real redis-server clusters on free loopback ports with a Hive proxy in front,
//! all torn down on Drop; plus small client helpers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hive_local::{ClusterOpts, GroupOpts, LocalCluster, LocalGroups, RedisProcess};
use hive_proxy::config::{Config, Mode};
use hive_proxy::server::ProxyHandle;
use tempfile::TempDir;

pub use hive_local::{block_on, free_port_block, free_port_pair};

pub mod backups;
pub mod cross_slot;
pub mod faults;
pub mod http;
pub mod ledger;
pub mod module_cluster;
pub mod module_node;
pub mod process;
pub mod suites;
pub mod tmux;

pub use process::HiveProcess;

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
        Env::on("127.0.0.1", masters, replicas, tweak)
    }

    /// Nodes and proxy on loopback address `host` (`127.0.0.1` or `::1`).
    pub fn on(host: &str, masters: usize, replicas: usize, tweak: impl FnOnce(&mut Config)) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("hive-test-")
            .tempdir()
            .expect("tempdir");
        let mut opts = ClusterOpts::new(masters, replicas, dir.path().to_path_buf());
        opts.host = host.into();
        let cluster = LocalCluster::start(&opts).expect("start the local cluster");
        let mut config = Config::default();
        config.proxy.listen = hive_common::addr::join(host, 0);
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

/// Master/replica groups (with sentinels in sentinel mode) and a proxy in front. Field order
/// matters: the proxy stops before the nodes.
pub struct GroupEnv {
    pub proxy: ProxyHandle,
    pub groups: LocalGroups,
    pub dir: TempDir,
}

impl GroupEnv {
    /// `groups` master + replica groups watched by 3 sentinels (quorum 2, down-after 1000 ms).
    pub fn sentinel(
        groups: usize,
        password: Option<&str>,
        tweak: impl FnOnce(&mut Config),
    ) -> GroupEnv {
        GroupEnv::start(groups, 3, password, tweak)
    }

    /// `groups` standalone masters (each with a replica) in static mode.
    pub fn statik(groups: usize, tweak: impl FnOnce(&mut Config)) -> GroupEnv {
        GroupEnv::start(groups, 0, None, tweak)
    }

    pub fn start(
        groups: usize,
        sentinels: usize,
        password: Option<&str>,
        tweak: impl FnOnce(&mut Config),
    ) -> GroupEnv {
        let dir = tempfile::Builder::new()
            .prefix("hive-test-")
            .tempdir()
            .expect("tempdir");
        let mut opts = GroupOpts::new(groups, sentinels, dir.path().to_path_buf());
        opts.password = password.map(str::to_string);
        opts.failover_timeout_ms = 4000;
        let local = LocalGroups::start(&opts).expect("start the groups");
        let mut config = Config::default();
        config.proxy.listen = "127.0.0.1:0".into();
        config.proxy.threads = 2;
        config.backend.password = local.password.clone().map(Into::into);
        config.backend.sentinel_password = local.password.clone().map(Into::into);
        config.backend.failover_hold_ms = 10_000;
        if sentinels > 0 {
            config.backend.mode = Mode::Sentinel;
            config.backend.sentinels = local.sentinel_addrs();
            config.backend.shards = local.sentinel_shards();
        } else {
            config.backend.mode = Mode::Static;
            config.backend.shards = local.static_shards();
        }
        tweak(&mut config);
        let proxy = ProxyHandle::start(config).expect("start the proxy");
        GroupEnv {
            proxy,
            groups: local,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.proxy.addr)
    }

    pub fn client(&self) -> redis::Connection {
        connect(&self.url())
    }

    /// A direct connection to a node (with the password, if any).
    pub fn node(&self, addr: &str) -> redis::Connection {
        connect(&suites::url(addr, self.groups.password.as_deref()))
    }

    /// The master the proxy currently routes shard `i` to.
    pub fn routed_master(&self, i: usize) -> String {
        self.proxy.shared.plane.topology.load().map.shards()[i]
            .master
            .clone()
    }

    /// A hash tag whose keys belong to shard `i`.
    pub fn tag_of(&self, i: usize) -> String {
        let topo = self.proxy.shared.plane.topology.load();
        (0..)
            .map(|n| format!("{{g{n}}}"))
            .find(|t| topo.map.shard_of(hive_common::Slot::for_key(t.as_bytes())) == Some(i))
            .expect("every shard owns a slot")
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

/// The master `proxy` routes `key` to now, and that shard's first replica (shown once it has
/// replicated something).
pub fn shard_nodes(proxy: &ProxyHandle, key: &str) -> (String, Option<String>) {
    let t = proxy.shared.plane.topology.load();
    let i = t
        .map
        .shard_of(hive_common::Slot::for_key(key.as_bytes()))
        .expect("the key's slot has a shard");
    let s = &t.map.shards()[i];
    (s.master.clone(), s.replicas.first().cloned())
}

/// Promotes the replica of `key`'s shard with CLUSTER FAILOVER TAKEOVER and waits until
/// `proxy` routes the key to it; its address.
pub fn take_over(proxy: &ProxyHandle, key: &str) -> String {
    module_cluster::wait_for("the shard's replica", Duration::from_secs(15), || {
        shard_nodes(proxy, key).1.is_some()
    });
    let (old, replica) = shard_nodes(proxy, key);
    let replica = replica.expect("a replica");
    let mut r = connect(&node_url(&replica));
    let _: String = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query(&mut r)
        .expect("CLUSTER FAILOVER TAKEOVER");
    module_cluster::wait_for("the promotion", Duration::from_secs(15), || {
        shard_nodes(proxy, key).0 != old
    });
    replica
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

/// A standalone redis-server with `extra` arguments.
pub fn single_node_with(dir: &TempDir, extra: &[&str]) -> RedisProcess {
    let port = free_port_pair().expect("port");
    RedisProcess::start(dir.path(), port, extra).expect("start redis-server")
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

/// The module built by `cargo build -p hive-module` (the test script builds it first).
pub fn module_so() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let so = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("libhive_module.so");
    assert!(
        so.exists(),
        "{} is missing: run `cargo build -p hive-module` first (deploy/local/test.sh does)",
        so.display()
    );
    so
}

/// The `hive` binary built by `cargo build` (the test script builds it first).
pub fn hive_bin() -> PathBuf {
    // `HIVE_BIN` runs the same tests against another build (a release one, to measure).
    if let Ok(p) = std::env::var("HIVE_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/hive
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("hive")
}

/// The Python with redis-py that `deploy/local/test.sh` installs in target/pyvenv
/// (`HIVE_PYTHON` overrides).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HIVE_PYTHON") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run deploy/local/test.sh, which installs redis-py from PyPI",
        p.display()
    );
    p
}

/// An error reply as `CODE detail` (`NOPERM this user has ...`), for exact comparisons.
pub fn error_text(r: redis::RedisResult<redis::Value>) -> String {
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

/// A number from the INFO of the server behind `c` (through Hive, its `# Proxy` field first).
pub fn info_u64(c: &mut redis::Connection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").query(c).expect("INFO");
    hive_common::info::field(&text, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no number {field}"))
}

/// Runs one command given as words.
pub fn run(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}
