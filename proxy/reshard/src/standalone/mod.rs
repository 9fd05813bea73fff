//! Sentinel and static modes: the slot map lives on the masters (hive-module's `HIVE.SLOTS`),
//! and a slot moves by a handover that hive-module's filter guards on the source (`handover`).
//! This file reads the deployment (every master must carry the module), seeds the map from
//! `hive.toml` once, writes new maps to every master, and waits until every live proxy
//! routes by a new map.

pub mod handover;
pub mod maps;
pub mod survey;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hive_common::resp::Value;
use hive_common::topology::deployed::{format_slots, DeployedMap, DeployedShard};
use hive_upstream::config::Mode;
use hive_upstream::topology::NO_MASTER;

use crate::error::{ReshardError, Result};
use crate::plan::Member;
use crate::session::Session;

/// A proxy that has not acknowledged any map for this long is taken as stopped (proxies
/// acknowledge every `backend.refresh_interval_ms`, 1 s by default).
pub const PROXY_SILENT: Duration = Duration::from_secs(10);
/// How long every live proxy has to take a new map.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// The deployment as a handover sees it.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub mode: Mode,
    pub map: DeployedMap,
    /// Shard name → its master's address now.
    pub addrs: BTreeMap<String, String>,
}

impl Deployment {
    pub fn addr(&self, name: &str) -> Result<String> {
        self.addrs
            .get(name)
            .cloned()
            .ok_or_else(|| ReshardError::Unsettled(format!("shard {name} has no master now")))
    }

    /// The shard a user names, by shard name or master address.
    pub fn find(&self, node: &str) -> std::result::Result<String, String> {
        if self.map.shards.iter().any(|s| s.name == node) {
            return Ok(node.to_string());
        }
        self.addrs
            .iter()
            .find(|(_, a)| a.as_str() == node)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| format!("{node}: not a master (or group) of this deployment"))
    }

    pub fn members(&self, weights: &[(String, f64)]) -> Vec<Member> {
        self.map
            .shards
            .iter()
            .zip(self.map.ranges())
            .map(|(s, r)| Member {
                id: s.name.clone(),
                slots: hive_common::topology::deployed::expand(&r),
                weight: weights
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map_or(1.0, |(_, w)| *w),
            })
            .collect()
    }
}

/// The map a node answers to `HIVE.SLOTS GET`, if it has one.
fn map_of(v: &Value) -> Option<DeployedMap> {
    let json: serde_json::Value = serde_json::from_slice(v.as_bytes()?).ok()?;
    serde_json::from_value(json.get("map")?.clone()).ok()
}

fn no_module(addr: &str, why: &str) -> ReshardError {
    ReshardError::Input(format!(
        "{addr}: hive-module is not loaded ({why}); sentinel and static modes keep the slot map and hand slots over through it: load it on every node"
    ))
}

/// `HIVE.SLOTS GET` on `addr`: refused with the reason when the module is missing.
pub async fn node_state(s: &mut Session, addr: &str) -> Result<Value> {
    match s.call(addr, &["HIVE.SLOTS", "GET"]).await {
        Ok(v) => Ok(v),
        Err(ReshardError::Node(hive_upstream::conn::control::QueryError::Redis {
            message: msg,
            ..
        })) => Err(no_module(addr, &msg)),
        Err(e) => Err(e),
    }
}

/// Reads the deployment: each shard's master (as the backplane resolved it: the layout's
/// addresses, or Sentinel's), the newest map among them, or `hive.toml`'s shards as epoch 0
/// when no master carries one yet.
pub async fn load(s: &mut Session) -> Result<Deployment> {
    let plane = s.plane().clone();
    let mode = plane.config.mode.clone();
    let layout = plane.layout.load_full();
    let topo = plane.topology.load_full();
    let mut addrs = BTreeMap::new();
    for (i, name) in layout.names.iter().enumerate() {
        let addr = match mode {
            Mode::Sentinel => topo
                .map
                .shards()
                .get(i)
                .map(|s| s.master.clone())
                .filter(|m| m != NO_MASTER)
                .ok_or_else(|| {
                    ReshardError::Unsettled(format!("group {name}: Sentinel names no master now"))
                })?,
            _ => name.clone(),
        };
        addrs.insert(name.clone(), addr);
    }
    let mut newest: Option<DeployedMap> = None;
    for addr in addrs.values() {
        let v = node_state(s, addr).await?;
        if let Some(m) = map_of(&v) {
            if newest.as_ref().is_none_or(|n| m.epoch > n.epoch) {
                newest = Some(m);
            }
        }
    }
    let map = newest.unwrap_or_else(|| DeployedMap {
        epoch: 0,
        shards: layout
            .names
            .iter()
            .zip(&layout.ranges)
            .zip(&layout.replicas)
            .map(|((n, r), reps)| DeployedShard {
                name: n.clone(),
                replicas: if matches!(mode, Mode::Static) {
                    reps.clone()
                } else {
                    Vec::new()
                },
                slots: format_slots(&hive_common::topology::deployed::expand(r)),
            })
            .collect(),
        moving: Vec::new(),
    });
    // The map may name groups hive.toml does not (added since): resolve those as well.
    for sh in &map.shards {
        if !addrs.contains_key(&sh.name) {
            let addr = match mode {
                Mode::Sentinel => hive_upstream::watch::sentinel::discover(&plane, &sh.name)
                    .await
                    .map(|(m, _)| m)
                    .map_err(|why| ReshardError::Unsettled(format!("group {}: {why}", sh.name)))?,
                _ => sh.name.clone(),
            };
            node_state(s, &addr).await?;
            addrs.insert(sh.name.clone(), addr);
        }
    }
    addrs.retain(|n, _| map.shards.iter().any(|s| &s.name == n));
    Ok(Deployment { mode, map, addrs })
}

/// Writes `map` to every master of the deployment (and `extra` ones: a joining master), and
/// makes it the deployment's.
pub async fn write_map(
    s: &mut Session,
    d: &mut Deployment,
    map: DeployedMap,
    extra: &[String],
) -> Result<()> {
    map.check()
        .map_err(|e| ReshardError::Input(format!("the new slot map is invalid: {e}")))?;
    let json = map.to_json();
    let mut targets: Vec<String> = d.addrs.values().cloned().collect();
    targets.extend(extra.iter().cloned());
    targets.sort();
    targets.dedup();
    for addr in &targets {
        match s.call(addr, &["HIVE.SETSLOTS", "MAP", &json]).await {
            Ok(_) => {}
            Err(ReshardError::Node(hive_upstream::conn::control::QueryError::Redis {
                message: msg,
                ..
            })) if msg.starts_with("STALE") => {
                return Err(ReshardError::Unsettled(format!(
                "{addr} holds a newer slot map than this run ({msg}): another reshard is running"
            )))
            }
            Err(e) => return Err(e),
        }
    }
    d.map = map;
    Ok(())
}

/// Writes `hive.toml`'s map as epoch 1 when the deployment carries none yet.
pub async fn seed(s: &mut Session, d: &mut Deployment) -> Result<()> {
    if d.map.epoch > 0 {
        return Ok(());
    }
    let mut map = d.map.clone();
    map.epoch = 1;
    write_map(s, d, map, &[]).await
}

/// Waits until every proxy heard from within `PROXY_SILENT` routes by `epoch` or later.
pub async fn wait_acks(s: &mut Session, d: &Deployment, epoch: u64) -> Result<()> {
    let deadline = Instant::now() + ACK_WAIT;
    loop {
        let mut seen: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for addr in d.addrs.values() {
            let Ok(v) = s.call(addr, &["HIVE.SLOTS", "ACKS"]).await else {
                continue;
            };
            for row in v.as_array().unwrap_or_default() {
                let r = row.as_array().unwrap_or_default();
                let (Some(id), Some(e), Some(age)) = (
                    r.first().and_then(Value::as_str),
                    r.get(1).and_then(Value::as_int),
                    r.get(2).and_then(Value::as_int),
                ) else {
                    continue;
                };
                let ent = seen.entry(id.to_string()).or_insert((0, i64::MAX));
                ent.0 = ent.0.max(e.max(0) as u64);
                ent.1 = ent.1.min(age);
            }
        }
        let silent = PROXY_SILENT.as_millis() as i64;
        let behind: Vec<(String, u64)> = seen
            .into_iter()
            .filter(|(_, (e, age))| *age < silent && *e < epoch)
            .map(|(id, (e, _))| (id, e))
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let (id, e) = &behind[0];
            return Err(ReshardError::Unsettled(format!(
                "proxy {id} still routes by slot map epoch {e}, not {epoch}, after {} s ({} proxies behind)",
                ACK_WAIT.as_secs(),
                behind.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
