//! The Sentinel deployment of a fault test, every process in a namespace of its own: a master
//! and two replicas (AOF on, as the seeds run them), three sentinels (quorum 2,
//! down-after-milliseconds 5000, as the seeds' configs), and Hive in front; the test drives
//! it from a control namespace. Two replicas, because with `write_ack = "replica"` a shard
//! needs a replica left after its master is lost to take writes again (docs/src/durability.md).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use hive_local::RedisProcess;
use hive_proxy::config::{Config, Mode, ShardConfig, WriteAck};
use hive_proxy::server::ProxyHandle;

use super::netns::Lab;
use super::relay::Relay;
use super::scenario::{start_proxy, FaultLab};
use crate::module_cluster::wait_for;

/// Member names, in address order.
/// `mx` holds the fault relay in front of the master, when a scenario asks for it.
pub const MEMBERS: &[&str] = &["ctl", "hive", "m", "r1", "r2", "s1", "s2", "s3", "mx"];
pub const DOWN_AFTER_MS: u64 = 5000;
pub(super) const NODE_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
const GROUP: &str = "f";

/// Field order matters: the proxy goes before the nodes, the namespaces last.
pub struct SentinelLab {
    pub proxy: ProxyHandle,
    pub relay: Option<Relay>,
    pub nodes: Vec<RedisProcess>,
    pub sentinels: Vec<RedisProcess>,
    pub lab: Lab,
    _dir: tempfile::TempDir,
}

fn addr(lab: &Lab, member: &str, port: u16) -> String {
    format!("{}:{port}", lab.ip(member))
}

impl SentinelLab {
    /// Starts everything; the calling thread moves into the control namespace for good. With
    /// `relayed`, every peer reaches the master through the fault relay in `mx`: the replicas
    /// replicate from it, the sentinels monitor it, so Hive is given it too.
    pub fn start(write_ack: WriteAck, relayed: bool) -> Result<SentinelLab> {
        let lab = Lab::new(MEMBERS)?;
        lab.enter("ctl")?;
        let dir = tempfile::Builder::new().prefix("hive-faults-").tempdir()?;
        let module = crate::module_so().display().to_string();
        let node = |member: &str, extra: &[&str]| -> Result<RedisProcess> {
            let d = dir.path().join(member);
            // hive-module, as the seeds load it: its failover push tells Hive of a promotion.
            let mut args = vec!["--appendonly", "yes", "--appendfsync", "everysec"];
            args.extend(["--loadmodule", module.as_str()]);
            args.extend_from_slice(extra);
            RedisProcess::start_via_ip(&lab.prefix(member), &d, &lab.ip(member), NODE_PORT, &args)
        };
        let master = node("m", &[])?;
        let relay = if relayed {
            let at = format!("{}:{NODE_PORT}", lab.ip("mx")).parse()?;
            Some(Relay::start(
                Some(lab.path("mx")),
                &[(at, master.addr.parse()?)],
            )?)
        } else {
            None
        };
        let mip = lab.ip(if relayed { "mx" } else { "m" });
        let port = NODE_PORT.to_string();
        // Through the relay the master sees each replica at the relay's address: the replicas
        // announce their own, or the sentinels would take the master for its own replica.
        let (r1ip, r2ip) = (lab.ip("r1"), lab.ip("r2"));
        let r1 = node(
            "r1",
            &["--replicaof", &mip, &port, "--replica-announce-ip", &r1ip],
        )?;
        let r2 = node(
            "r2",
            &["--replicaof", &mip, &port, "--replica-announce-ip", &r2ip],
        )?;
        let mut sentinels = Vec::new();
        for s in ["s1", "s2", "s3"] {
            sentinels.push(start_sentinel(&lab, dir.path(), s, &mip)?);
        }
        let mut config = Config::default();
        config.proxy.listen = addr(&lab, "hive", 6380);
        config.proxy.threads = 2;
        config.backend.mode = Mode::Sentinel;
        config.backend.sentinels = ["s1", "s2", "s3"]
            .iter()
            .map(|s| addr(&lab, s, SENTINEL_PORT))
            .collect();
        config.backend.shards = vec![ShardConfig {
            name: Some(GROUP.into()),
            ..Default::default()
        }];
        config.backend.write_ack = write_ack;
        let proxy = start_proxy(&lab, config)?;
        let me = SentinelLab {
            proxy,
            relay,
            nodes: vec![master, r1, r2],
            sentinels,
            lab,
            _dir: dir,
        };
        me.wait_healthy(Duration::from_secs(30), &format!("{mip}:{NODE_PORT}"));
        Ok(me)
    }

    /// The master Hive routes to now.
    pub fn routed(&self) -> String {
        self.proxy.shared.plane.topology.load().map.shards()[0]
            .master
            .clone()
    }

    /// Waits until `master` serves through Hive with both replicas attached and every sentinel
    /// agrees on it.
    pub fn wait_healthy(&self, limit: Duration, master: &str) {
        wait_for("a healthy group", limit, || {
            let Ok(mut m) = redis::Client::open(format!("redis://{master}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            else {
                return false;
            };
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut m)
                .unwrap_or_default();
            let agreed = self.sentinels.iter().all(|s| {
                redis::Client::open(format!("redis://{}/", s.addr))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut c| {
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(GROUP)
                            .query::<Vec<String>>(&mut c)
                    })
                    .is_ok_and(|a| a.len() == 2 && format!("{}:{}", a[0], a[1]) == master)
            });
            info.contains("connected_slaves:2") && agreed && self.routed() == master
        });
    }
}

impl FaultLab for SentinelLab {
    fn mode(&self) -> &'static str {
        "sentinel"
    }
    fn tag(&self) -> String {
        "{f}".into()
    }
    fn parts(&self) -> (&ProxyHandle, &[RedisProcess], &Lab) {
        (&self.proxy, &self.nodes, &self.lab)
    }
    fn replica_members(&self) -> &'static [&'static str] {
        &["r1", "r2"]
    }
    fn master_member(&self) -> &'static str {
        "m"
    }
    fn others(&self) -> &'static [&'static str] {
        &["r1", "r2", "s1", "s2", "s3"]
    }
    fn kill_master(&mut self) {
        self.nodes[0].kill();
    }
    fn master_addr(&self) -> String {
        self.routed()
    }
    fn relay(&self) -> Option<&Relay> {
        self.relay.as_ref()
    }
}

fn start_sentinel(lab: &Lab, dir: &Path, member: &str, master_ip: &str) -> Result<RedisProcess> {
    let d = dir.join(member);
    std::fs::create_dir_all(&d)?;
    let me = lab.ip(member);
    let conf = d.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {SENTINEL_PORT}\nbind {me}\nprotected-mode no\ndaemonize no\ndir {}\nlogfile sentinel.log\n\
             sentinel monitor {GROUP} {master_ip} {NODE_PORT} 2\n\
             sentinel down-after-milliseconds {GROUP} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {GROUP} 10000\nsentinel parallel-syncs {GROUP} 1\n",
            d.display()
        ),
    )?;
    RedisProcess::start_cmd(
        &lab.prefix(member),
        hive_local::process::redis_sentinel_bin(),
        &d,
        &me,
        SENTINEL_PORT,
        vec![conf.display().to_string()],
    )
}
