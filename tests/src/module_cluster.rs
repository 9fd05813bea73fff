//! A 3+3 Redis Cluster with hive-module and a proxy in front, with the helpers the replica-read
//! and failover-push tests share: where commands ran (INFO commandstats), fresh replicas.

use std::thread;
use std::time::{Duration, Instant};

use hive_local::{ClusterOpts, LocalCluster};
use hive_proxy::config::Config;
use hive_proxy::server::ProxyHandle;

use crate::{connect, module_so, node_url};

pub fn wait_for(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(poll_until(limit, f), "timed out waiting for {what}");
}

/// Whether `f` held within `limit`, looking every 50 ms (for a caller that reports the
/// failure itself).
pub fn poll_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

pub struct Deployment {
    pub proxy: ProxyHandle,
    pub cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

/// A 3+3 cluster with hive-module and a proxy configured by `tweak`.
pub fn deployment(tweak: impl FnOnce(&mut Config)) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ClusterOpts::new(3, 1, dir.path().to_path_buf());
    opts.extra = vec![
        "--loadmodule".into(),
        module_so().display().to_string(),
        // DEBUG SLEEP freezes a replica (from loopback only).
        "--enable-debug-command".into(),
        "local".into(),
    ];
    let cluster = LocalCluster::start(&opts).expect("cluster");
    // Every master's replica attached, as CLUSTER SLOTS shows it (the push test's proxies
    // read the map once).
    let mut node = connect(&node_url(&cluster.master_addrs()[0]));
    wait_for(
        "the replicas in CLUSTER SLOTS",
        Duration::from_secs(20),
        || {
            let v: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut node).unwrap();
            v.len() >= 3
                && v.iter()
                    .all(|r| matches!(r, redis::Value::Array(a) if a.len() >= 4))
        },
    );
    let proxy = proxy_for(&cluster, tweak);
    Deployment {
        proxy,
        cluster,
        _dir: dir,
    }
}

pub fn proxy_for(cluster: &LocalCluster, tweak: impl FnOnce(&mut Config)) -> ProxyHandle {
    let mut config = Config::default();
    config.proxy.listen = "127.0.0.1:0".into();
    config.proxy.threads = 2;
    config.backend.seeds = cluster.master_addrs();
    tweak(&mut config);
    let proxy = ProxyHandle::start(config).expect("proxy");
    wait_for("the topology", Duration::from_secs(10), || {
        let t = proxy.shared.plane.topology.load();
        t.map.shards().len() == 3 && t.map.shards().iter().all(|s| !s.replicas.is_empty())
    });
    proxy
}

impl Deployment {
    pub fn client(&self) -> redis::Connection {
        connect(&format!("redis://{}/", self.proxy.addr))
    }

    pub fn masters(&self) -> Vec<String> {
        let t = self.proxy.shared.plane.topology.load();
        t.map.shards().iter().map(|s| s.master.clone()).collect()
    }

    pub fn replica_of(&self, i: usize) -> String {
        self.proxy.shared.plane.topology.load().map.shards()[i].replicas[0].clone()
    }

    /// A hash tag whose keys shard `i` owns.
    pub fn tag_of(&self, i: usize) -> String {
        let topo = self.proxy.shared.plane.topology.load();
        (0..)
            .map(|n| format!("{{t{n}}}"))
            .find(|t| topo.map.shard_of(hive_common::Slot::for_key(t.as_bytes())) == Some(i))
            .unwrap()
    }

    /// Waits until every shard has `n` replicas the read policy may use.
    pub fn wait_fresh(&self, n: usize) {
        wait_for("fresh replicas", Duration::from_secs(15), || {
            let m = self.proxy.shared.plane.reads.load();
            m.shards.len() == 3 && m.shards.iter().all(|s| s.len() == n)
        });
    }

    /// Waits until every shard's replica has every write its master had when this was called.
    pub fn wait_replicated(&self) {
        let pairs: Vec<(String, String)> = self
            .masters()
            .into_iter()
            .enumerate()
            .map(|(i, m)| (m, self.replica_of(i)))
            .collect();
        wait_caught_up(&pairs);
    }

    pub fn replica_reads(&self) -> u64 {
        let mut c = self.client();
        let info: String = redis::cmd("INFO").query(&mut c).unwrap();
        field(&info, "replica_reads")
    }
}

/// Waits until each `(master, replica)` replica's `slave_repl_offset` reaches the offset its
/// master had when this was called (heartbeats keep moving the masters' offsets, so waiting
/// for "equal" would be a race).
pub fn wait_caught_up(pairs: &[(String, String)]) {
    let offset = |addr: &str, name: &str| {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut connect(&node_url(addr)))
            .unwrap();
        field(&info, name)
    };
    let wanted: Vec<u64> = pairs
        .iter()
        .map(|(m, _)| offset(m, "master_repl_offset"))
        .collect();
    wait_for("the replicas to catch up", Duration::from_secs(15), || {
        pairs
            .iter()
            .zip(&wanted)
            .all(|((_, r), w)| offset(r, "slave_repl_offset") >= *w)
    });
}

pub fn field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Calls of `cmd` on the node at `addr` since its last CONFIG RESETSTAT.
pub fn calls(addr: &str, cmd: &str) -> u64 {
    let mut c = connect(&node_url(addr));
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn reset_stats(addrs: &[String]) {
    for a in addrs {
        let mut c = connect(&node_url(a));
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    }
}

/// Takes a replica's master link down and keeps it down: a wrong `masterauth` (the masters
/// have no password, so the replica's AUTH fails on every reconnect), then its link is cut.
pub fn break_master_link(replica: &str) {
    let mut r = connect(&node_url(replica));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("not-the-password")
        .query(&mut r)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query(&mut r)
        .unwrap();
}

/// Lets the replica re-sync (undoes `break_master_link`).
pub fn mend_master_link(replica: &str) {
    let mut r = connect(&node_url(replica));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("")
        .query(&mut r)
        .unwrap();
}
