//! The Redis Cluster of a fault test, every node in a namespace of its own: three masters
//! (cluster-node-timeout 5000, AOF on), the faulted one (`a1`, slots 0-5460) with two
//! replicas so that a shard keeps one after a failover (`write_ack = "replica"` needs it),
//! and Hive in front; the test drives it from a control namespace.

use std::time::Duration;

use anyhow::{Context, Result};
use hive_local::RedisProcess;
use hive_proxy::config::{Config, WriteAck};
use hive_proxy::server::ProxyHandle;

use super::netns::Lab;
use super::relay::Relay;
use super::scenario::{start_proxy, FaultLab};
use super::sentinel::{DOWN_AFTER_MS, NODE_PORT};
use crate::module_cluster::wait_for;

pub const MEMBERS: &[&str] = &["ctl", "hive", "a1", "a2", "a3", "b1", "c1"];
/// Holds the fault relay in front of `a1`, when a scenario asks for it.
const RELAY: &str = "mx";
const BUS_PORT: u16 = NODE_PORT + 10000;
const MASTERS: [(&str, u16, u16); 3] = [("a1", 0, 5460), ("b1", 5461, 10922), ("c1", 10923, 16383)];

/// Field order matters: the proxy goes before the nodes, the namespaces last.
pub struct ClusterLab {
    pub proxy: ProxyHandle,
    pub relay: Option<Relay>,
    pub nodes: Vec<RedisProcess>,
    pub lab: Lab,
    _dir: tempfile::TempDir,
}

fn conn(addr: &str) -> Result<redis::Connection> {
    let c = redis::Client::open(format!("redis://{addr}/"))?;
    Ok(c.get_connection_with_timeout(Duration::from_secs(2))?)
}

fn call(addr: &str, args: &[&str]) -> Result<redis::Value> {
    let mut c = conn(addr)?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
        .with_context(|| format!("{} on {addr}", args.join(" ")))
}

fn text(v: redis::Value) -> String {
    redis::from_redis_value(&v).unwrap_or_default()
}

impl ClusterLab {
    /// Forms the cluster and starts Hive; the calling thread moves into the control namespace
    /// for good. With `relayed`, `a1` announces the fault relay's address (client and bus
    /// ports), so every peer, its replicas and Hive reach it through the relay.
    pub fn start(write_ack: WriteAck, relayed: bool) -> Result<ClusterLab> {
        let mut members = MEMBERS.to_vec();
        members.push(RELAY);
        let lab = Lab::new(&members)?;
        lab.enter("ctl")?;
        let dir = tempfile::Builder::new().prefix("hive-faults-").tempdir()?;
        let timeout = DOWN_AFTER_MS.to_string();
        // hive-module, as the seeds load it: its failover push tells Hive of a promotion.
        let module = crate::module_so().display().to_string();
        let mut nodes = Vec::new();
        let (mx, port, bus) = (lab.ip(RELAY), NODE_PORT.to_string(), BUS_PORT.to_string());
        for m in &MEMBERS[2..] {
            let me = lab.ip(m);
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &timeout,
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--loadmodule",
                &module,
                // Shard a has two replicas and b and c none: without this, a's spare replica
                // may migrate to b or c during a's failover, leaving a's new master without
                // one (seen here).
                "--cluster-allow-replica-migration",
                "no",
            ];
            if relayed && *m == "a1" {
                args.extend([
                    "--cluster-announce-ip",
                    &mx,
                    "--cluster-announce-port",
                    &port,
                    "--cluster-announce-bus-port",
                    &bus,
                ]);
            } else if relayed {
                // Through the relay a1 sees every peer at the relay's address: each announces
                // its own, as nodes behind NAT do.
                args.extend(["--cluster-announce-ip", &me, "--replica-announce-ip", &me]);
            }
            let d = dir.path().join(m);
            nodes.push(RedisProcess::start_via_ip(
                &lab.prefix(m),
                &d,
                &lab.ip(m),
                NODE_PORT,
                &args,
            )?);
        }
        let relay = if relayed {
            let a1 = lab.ip("a1");
            let route = |p: u16| -> Result<(std::net::SocketAddr, std::net::SocketAddr)> {
                Ok((format!("{mx}:{p}").parse()?, format!("{a1}:{p}").parse()?))
            };
            let routes = [route(NODE_PORT)?, route(BUS_PORT)?];
            Some(Relay::start(Some(lab.path(RELAY)), &routes)?)
        } else {
            None
        };
        let at = |m: &str| format!("{}:{NODE_PORT}", lab.ip(m));
        // Where everyone else reaches a1.
        let reach = |m: &str| {
            if relayed && m == "a1" {
                format!("{mx}:{NODE_PORT}")
            } else {
                at(m)
            }
        };
        for (epoch, (m, from, to)) in MASTERS.iter().enumerate() {
            call(
                &at(m),
                &["CLUSTER", "SET-CONFIG-EPOCH", &(epoch + 1).to_string()],
            )?;
            call(
                &at(m),
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &from.to_string(),
                    &to.to_string(),
                ],
            )?;
        }
        for m in &MEMBERS[3..] {
            call(&at("a1"), &["CLUSTER", "MEET", &lab.ip(m), &port])?;
        }
        wait_for(
            "every node to know every other",
            Duration::from_secs(30),
            || {
                MEMBERS[2..].iter().all(|m| {
                    call(&at(m), &["CLUSTER", "NODES"])
                        .map(text)
                        .is_ok_and(|n| {
                            n.lines().count() == MEMBERS.len() - 2 && !n.contains("handshake")
                        })
                })
            },
        );
        let a1 = text(call(&at("a1"), &["CLUSTER", "MYID"])?);
        for r in ["a2", "a3"] {
            call(&at(r), &["CLUSTER", "REPLICATE", &a1])?;
        }
        let first = reach("a1");
        let mut config = Config::default();
        config.proxy.listen = format!("{}:6380", lab.ip("hive"));
        config.proxy.threads = 2;
        config.backend.seeds = ["a1", "b1", "c1"].iter().map(|m| reach(m)).collect();
        config.backend.write_ack = write_ack;
        let proxy = start_proxy(&lab, config)?;
        let me = ClusterLab {
            proxy,
            relay,
            nodes,
            lab,
            _dir: dir,
        };
        me.wait_healthy(Duration::from_secs(60), &first);
        Ok(me)
    }

    /// Waits until `master` serves slot 0 through Hive with two replicas in sync and the
    /// cluster is ok on every node.
    pub fn wait_healthy(&self, limit: Duration, master: &str) {
        wait_for("a healthy cluster", limit, || {
            let ok = self.nodes.iter().all(|n| {
                call(&n.addr, &["CLUSTER", "INFO"])
                    .map(text)
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
            let synced = call(master, &["INFO", "replication"])
                .map(text)
                .is_ok_and(|i| {
                    i.contains("connected_slaves:2") && i.matches("state=online").count() == 2
                });
            ok && synced && self.master_addr() == master
        });
    }
}

impl FaultLab for ClusterLab {
    fn mode(&self) -> &'static str {
        "cluster"
    }
    fn tag(&self) -> String {
        // "{f}" hashes to slot 3168: shard a's.
        "{f}".into()
    }
    fn parts(&self) -> (&ProxyHandle, &[RedisProcess], &Lab) {
        (&self.proxy, &self.nodes, &self.lab)
    }
    fn replica_members(&self) -> &'static [&'static str] {
        &["a2", "a3"]
    }
    fn master_member(&self) -> &'static str {
        "a1"
    }
    fn others(&self) -> &'static [&'static str] {
        &["a2", "a3", "b1", "c1"]
    }
    fn kill_master(&mut self) {
        self.nodes[0].kill();
    }
    fn master_addr(&self) -> String {
        let topo = self.proxy.shared.plane.topology.load();
        topo.map
            .shard_of(hive_common::Slot::for_key(b"{f}"))
            .map(|i| topo.map.shards()[i].master.clone())
            .unwrap_or_default()
    }
    fn relay(&self) -> Option<&Relay> {
        self.relay.as_ref()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_lab_tag_is_in_the_faulted_shard() {
        assert!(hive_common::Slot::for_key(b"{f}").get() <= super::MASTERS[0].2);
    }
}
