//! Local Sentinel deployments for `hive up --mode sentinel`, `--mode static` and the tests:
//! master/replica groups of standalone redis-servers, plus sentinels (quorum 2), all killed on
//! Drop. CLI support code, so it reports errors with `anyhow`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hive_common::info;
use hive_common::resp::Value;

use hive_upstream::config::ShardConfig;
use hive_upstream::conn::control::ControlConn;
use hive_upstream::Auth;

use crate::process::{free_port_pair, RedisProcess};
use crate::wait::{block_on, wait_until};

#[derive(Debug, Clone)]
pub struct GroupOpts {
    pub groups: usize,
    pub replicas: usize,
    /// Sentinels; 0 for a static deployment.
    pub sentinels: usize,
    /// First port (nodes, then sentinels, consecutive); `None` picks free ports.
    pub base_port: Option<u16>,
    pub dir: PathBuf,
    /// `requirepass`/`masterauth` for the nodes and `requirepass` for the sentinels.
    pub password: Option<String>,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    /// Extra redis-server arguments for every node (e.g. `--loadmodule`).
    pub extra: Vec<String>,
}

impl GroupOpts {
    pub fn new(groups: usize, sentinels: usize, dir: PathBuf) -> GroupOpts {
        GroupOpts {
            groups,
            replicas: 1,
            sentinels,
            base_port: None,
            dir,
            password: None,
            down_after_ms: 1000,
            failover_timeout_ms: 5000,
            extra: Vec::new(),
        }
    }
}

/// A master and its replicas, as started (after a failover the roles differ).
pub struct Group {
    pub name: String,
    pub nodes: Vec<RedisProcess>,
}

pub struct LocalGroups {
    pub groups: Vec<Group>,
    pub sentinels: Vec<RedisProcess>,
    pub password: Option<String>,
}

/// Group names: `hive-a`, `hive-b`, ...
pub fn group_name(i: usize) -> String {
    format!("hive-{}", (b'a' + (i % 26) as u8) as char)
}

impl LocalGroups {
    pub fn start(opts: &GroupOpts) -> Result<LocalGroups> {
        let mut next = opts.base_port;
        let mut port = || -> Result<u16> {
            match next.as_mut() {
                Some(p) => {
                    *p += 1;
                    Ok(*p - 1)
                }
                None => free_port_pair(),
            }
        };
        let mut auth: Vec<String> = opts.extra.clone();
        if let Some(pw) = &opts.password {
            auth.extend([
                "--requirepass".into(),
                pw.clone(),
                "--masterauth".into(),
                pw.clone(),
            ]);
        }
        let mut groups = Vec::new();
        for g in 0..opts.groups {
            let mut nodes = Vec::new();
            let mport = port()?;
            let refs: Vec<&str> = auth.iter().map(String::as_str).collect();
            nodes.push(RedisProcess::start(&opts.dir, mport, &refs)?);
            for _ in 0..opts.replicas {
                let p = port()?;
                let mut args = refs.clone();
                let master_port = mport.to_string();
                args.extend(["--replicaof", "127.0.0.1", &master_port]);
                nodes.push(RedisProcess::start(&opts.dir, p, &args)?);
            }
            groups.push(Group {
                name: group_name(g),
                nodes,
            });
        }
        let mut sentinels = Vec::new();
        for _ in 0..opts.sentinels {
            let p = port()?;
            let conf = opts.dir.join(format!("sentinel-{p}.conf"));
            let mut text = format!(
                "port {p}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile sentinel-{p}.log\n",
                opts.dir.display()
            );
            if let Some(pw) = &opts.password {
                text.push_str(&format!("requirepass {pw}\nsentinel sentinel-pass {pw}\n"));
            }
            for g in &groups {
                let name = &g.name;
                text.push_str(&format!(
                    "sentinel monitor {name} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {name} {}\n\
                     sentinel failover-timeout {name} {}\n\
                     sentinel parallel-syncs {name} 1\n",
                    g.nodes[0].port, opts.down_after_ms, opts.failover_timeout_ms
                ));
                if let Some(pw) = &opts.password {
                    text.push_str(&format!("sentinel auth-pass {name} {pw}\n"));
                }
            }
            std::fs::write(&conf, text)?;
            let args = vec![conf.display().to_string()];
            sentinels.push(RedisProcess::start_with(
                crate::process::redis_sentinel_bin(),
                &opts.dir,
                p,
                args,
            )?);
        }
        let local = LocalGroups {
            groups,
            sentinels,
            password: opts.password.clone(),
        };
        block_on(local.wait_ready(opts.replicas))?;
        Ok(local)
    }

    pub fn auth(&self) -> Option<Auth> {
        self.password.as_ref().map(|p| Auth {
            username: None,
            password: p.clone(),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| s.addr.clone()).collect()
    }

    /// `[[backend.shards]]` for a proxy in sentinel mode in front of these groups.
    pub fn sentinel_shards(&self) -> Vec<ShardConfig> {
        self.names().into_iter().map(ShardConfig::named).collect()
    }

    /// `[[backend.shards]]` for a proxy in static mode (the masters as started).
    pub fn static_shards(&self) -> Vec<ShardConfig> {
        self.groups
            .iter()
            .map(|g| {
                ShardConfig::at(
                    g.nodes[0].addr.clone(),
                    g.nodes[1..].iter().map(|n| n.addr.clone()).collect(),
                )
            })
            .collect()
    }

    /// The masters as started (group order).
    pub fn initial_masters(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|g| g.nodes[0].addr.clone())
            .collect()
    }

    /// Replicas are in sync, and every sentinel knows every replica and the other sentinels,
    /// so a failover can be authorised.
    async fn wait_ready(&self, replicas: usize) -> Result<()> {
        let t = Duration::from_secs(2);
        let auth = self.auth();
        for g in &self.groups {
            for r in &g.nodes[1..] {
                wait_until("replicas to sync", Duration::from_secs(30), || async {
                    let mut c = ControlConn::connect_auth(&r.addr, t, auth.as_ref()).await?;
                    let v = c.call(&["INFO", "replication"]).await?;
                    Ok(info::replication(v.as_str().unwrap_or("")).link_up)
                })
                .await?;
            }
        }
        let others = self.sentinels.len().saturating_sub(1);
        for s in &self.sentinels {
            for g in &self.groups {
                wait_until(
                    "sentinels to know replicas and each other",
                    Duration::from_secs(30),
                    || async {
                        let mut c = ControlConn::connect_auth(&s.addr, t, auth.as_ref()).await?;
                        let reps = c.call(&["SENTINEL", "replicas", &g.name]).await?;
                        let peers = c.call(&["SENTINEL", "sentinels", &g.name]).await?;
                        let n = |v: &Value| v.as_array().map(|a| a.len()).unwrap_or(0);
                        Ok(n(&reps) >= replicas && n(&peers) >= others)
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The current master of `name` according to the first sentinel that answers.
    pub fn master_of(&self, name: &str) -> Result<String> {
        block_on(async {
            let auth = self.auth();
            for s in self.sentinels.iter().filter(|s| s.is_running()) {
                let Ok(mut c) =
                    ControlConn::connect_auth(&s.addr, Duration::from_secs(2), auth.as_ref()).await
                else {
                    continue;
                };
                if let Ok(v) = c.call(&["SENTINEL", "get-master-addr-by-name", name]).await {
                    if let Some([h, p]) = v.as_array().and_then(|a| <&[Value; 2]>::try_from(a).ok())
                    {
                        return Ok(format!(
                            "{}:{}",
                            h.as_str().unwrap_or(""),
                            p.as_str().unwrap_or("")
                        ));
                    }
                }
            }
            Err(anyhow!("no sentinel knows the master of {name}"))
        })
    }

    /// The process listening on `addr`.
    pub fn node_mut(&mut self, addr: &str) -> Option<&mut RedisProcess> {
        self.groups
            .iter_mut()
            .flat_map(|g| g.nodes.iter_mut())
            .find(|n| n.addr == addr)
    }
}
