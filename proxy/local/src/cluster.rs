//! A local Redis Cluster for `hive up`, the drills and the tests: masters and replicas on free
//! loopback ports, formed with ADDSLOTSRANGE/MEET/REPLICATE, killed on Drop.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hive_common::info;
use hive_common::topology::ShardMap;
use hive_upstream::conn::control::{query, ControlConn};

use crate::process::{free_port_pair_on, RedisProcess};
use crate::wait::{block_on, wait_until};

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
    /// The loopback address the nodes bind: `127.0.0.1` (the default) or `::1`.
    pub host: String,
}

impl ClusterOpts {
    /// `masters` masters with `replicas` replicas each on free ports of 127.0.0.1.
    pub fn new(masters: usize, replicas: usize, dir: PathBuf) -> ClusterOpts {
        ClusterOpts {
            masters,
            replicas,
            base_port: None,
            node_timeout_ms: 2000,
            dir,
            extra: Vec::new(),
            host: "127.0.0.1".into(),
        }
    }
}

/// A running Redis Cluster; nodes `0..masters` start as masters, the rest as their replicas
/// (replica `j` of master `i` is node `masters + i * replicas + j`).
pub struct LocalCluster {
    pub nodes: Vec<RedisProcess>,
    pub masters: usize,
    host: String,
}

impl LocalCluster {
    pub fn start(opts: &ClusterOpts) -> Result<LocalCluster> {
        let total = opts.masters * (1 + opts.replicas);
        let mut nodes = Vec::with_capacity(total);
        for i in 0..total {
            let port = match opts.base_port {
                Some(b) => b + i as u16,
                None => free_port_pair_on(&opts.host)?,
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
            nodes.push(RedisProcess::start_on(&opts.dir, &opts.host, port, &extra)?);
        }
        let cluster = LocalCluster {
            nodes,
            masters: opts.masters,
            host: opts.host.clone(),
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
            let mut c = ControlConn::connect(&self.nodes[i].addr, t).await?;
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
        let mut first = ControlConn::connect(&self.nodes[0].addr, t).await?;
        for n in &self.nodes[1..] {
            first
                .call(&["CLUSTER", "MEET", &self.host, &n.port.to_string()])
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
                if info::field(info.as_str().unwrap_or(""), "cluster_state") != Some("ok") {
                    return Ok(false);
                }
                let repl = query(&n.addr, &["INFO", "replication"], t).await?;
                let repl = repl.as_str().unwrap_or("");
                let r = info::replication(repl);
                if r.role == "replica" && !r.link_up {
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
