//! Sentinel and static modes: follows the slot map the deployment keeps on its masters
//! (hive-module's `HIVE.SLOTS`), so that every Hive in front of it routes alike without talking
//! to the others. Each poll reads the map from every master, takes the newest epoch, and
//! acknowledges the epoch it routes by (`HIVE.SLOTS ACK`), which `hive reshard` waits for
//! before it moves keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hive_common::resp::Value;
use hive_common::topology::deployed::DeployedMap;
use tokio::sync::watch;
use tracing::{info, warn};

use super::sentinel;
use crate::config::Mode;
use crate::conn::control::{ControlConn, QueryError};
use crate::topology::layout::Layout;
use crate::topology::NO_MASTER;
use crate::Backplane;

/// The map a node holds, if any: `HIVE.SLOTS GET`'s JSON, `{"v":1,"map":{...},...}`.
fn map_of(json: &str) -> Option<DeployedMap> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let m = v.get("map")?;
    let map: DeployedMap = serde_json::from_value(m.clone()).ok()?;
    map.check().ok()?;
    Some(map)
}

/// The masters to ask: the routed ones and, in static mode, every master the layout names.
fn masters(plane: &Backplane) -> Vec<String> {
    let mut out: Vec<String> = plane.topology.load().masters();
    if plane.config.mode == Mode::Static {
        out.extend(plane.layout.load().names.iter().cloned());
    }
    out.retain(|m| m != NO_MASTER);
    out.sort();
    out.dedup();
    out
}

/// Reads every master's map once (at start) and installs the newest; see `Follower::poll`.
pub async fn poll(plane: &Backplane) -> bool {
    Follower::default().poll(plane).await
}

/// One connection kept per master across polls: a poll a second from every proxy (sidecars
/// included) must not cost the masters a new connection each.
#[derive(Default)]
pub struct Follower {
    conns: HashMap<String, ControlConn>,
}

impl Follower {
    async fn call(&mut self, plane: &Backplane, addr: &str, args: &[&str]) -> Option<Value> {
        if !self.conns.contains_key(addr) {
            let auth = plane.config.node_auth();
            let c = plane.connector.control(addr, auth.as_ref()).await.ok()?;
            self.conns.insert(addr.to_string(), c);
        }
        let c = self.conns.get_mut(addr)?;
        match c.call(args).await {
            Ok(v) => Some(v),
            // An error reply (no module) keeps the connection; a broken one is dialled again.
            Err(QueryError::Redis { .. }) => None,
            Err(_) => {
                self.conns.remove(addr);
                None
            }
        }
    }

    /// Reads every master's map and installs the newest if it is newer than the layout, then
    /// acknowledges. Returns whether the layout changed.
    pub async fn poll(&mut self, plane: &Backplane) -> bool {
        let addrs = masters(plane);
        self.conns.retain(|a, _| addrs.contains(a));
        let mut newest: Option<DeployedMap> = None;
        let mut reached = Vec::new();
        for addr in &addrs {
            // No module on a node: it carries no map, and cannot be acknowledged to.
            let Some(Value::Bulk(b)) = self.call(plane, addr, &["HIVE.SLOTS", "GET"]).await else {
                continue;
            };
            if let Some(m) = map_of(&String::from_utf8_lossy(&b)) {
                if newest.as_ref().is_none_or(|n| m.epoch > n.epoch) {
                    newest = Some(m);
                }
            }
            reached.push(addr);
        }
        let changed = newest.is_some_and(|map| install(plane, &map));
        // Epoch 0 too (hive.toml's map): `hive reshard` then knows this proxy exists before
        // the deployment's first map, and waits for it to take that one.
        let epoch = plane.layout.load().epoch.to_string();
        if let Some(id) = plane.proxy_id.get() {
            for addr in reached {
                self.call(plane, addr, &["HIVE.SLOTS", "ACK", id, &epoch])
                    .await;
            }
        }
        changed
    }
}

/// Installs `map` if it is newer than the layout; whether it did.
fn install(plane: &Backplane, map: &DeployedMap) -> bool {
    if map.epoch <= plane.layout.load().epoch {
        return false;
    }
    let next = Layout::from_deployed(map);
    if !next.covers_all() {
        warn!(
            epoch = map.epoch,
            "the deployment's slot map leaves slots unowned; routing by it anyway"
        );
    }
    info!(
        epoch = map.epoch,
        shards = next.names.len(),
        moving = next.moving_count(),
        "slot map from the deployment installed"
    );
    plane.layout.store(Arc::new(next));
    true
}

/// Polls every `backend.refresh_interval_ms`, and at once when hive-module publishes a new map
/// (`slotmap` on `__hive__:events`), until shutdown;
/// a new layout is installed at once (static) or resolved through Sentinel (sentinel).
pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(plane.config.refresh_interval_ms.max(10));
    let mut follower = Follower::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = plane.map_changed.notified() => {}
            _ = shutdown.changed() => return,
        }
        if follower.poll(&plane).await {
            match plane.config.mode {
                Mode::Static => plane
                    .topology
                    .install(plane.layout.load().static_map(), Vec::new()),
                Mode::Sentinel => {
                    sentinel::refresh_all(&plane).await;
                }
                Mode::Cluster => {}
            }
        }
    }
}
