//! The failover push: one subscription to hive-module's `__hive__:events` per node of the
//! topology (re-made after reconnects, dropped ten minutes after the node leaves), so a promotion or a
//! lost master link is acted on when the node reports it instead of at the next poll.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_common::resp::Value;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::config::Mode;
use crate::conn::control::{ControlConn, QueryError};
use crate::stats::UpstreamStats;
use crate::topology::NO_MASTER;
use crate::watch::{cluster, sentinel};
use crate::Backplane;

pub const CHANNEL: &str = "__hive__:events";

/// How long to wait before looking again at a node without hive-module.
const NO_MODULE_RECHECK: Duration = Duration::from_secs(30);

/// The fields of an event the proxy acts on (the module's `event::Event`).
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub role: String,
    #[serde(default)]
    pub time_ms: u64,
}

/// How long a node that left the topology stays followed: during a failover Sentinel stops
/// listing the old master and may list the promoted replica late, and those are the nodes
/// whose events matter most then.
const KEEP_AFTER_LEAVING: Duration = Duration::from_secs(600);

/// Keeps one subscription per node of the topology (and of the recent ones) until shutdown.
pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks: HashMap<String, (JoinHandle<()>, Instant)> = HashMap::new();
    let mut changes = plane.topology.changes();
    loop {
        let topo = plane.topology.load_full();
        let now = Instant::now();
        let nodes: HashSet<String> = topo
            .map
            .shards()
            .iter()
            .flat_map(|s| std::iter::once(s.master.clone()).chain(s.replicas.iter().cloned()))
            .filter(|a| a != NO_MASTER)
            .collect();
        for addr in nodes {
            match tasks.entry(addr) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().1 = now,
                std::collections::hash_map::Entry::Vacant(e) => {
                    let task = tokio::spawn(follow(plane.clone(), e.key().clone()));
                    e.insert((task, now));
                }
            }
        }
        tasks.retain(|_, (task, seen)| {
            let keep = now.duration_since(*seen) < KEEP_AFTER_LEAVING;
            if !keep {
                task.abort();
            }
            keep
        });
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => {
                tasks.values().for_each(|(t, _)| t.abort());
                return;
            }
        }
    }
}

/// Why a subscription ended.
enum End {
    NoModule,
    /// `lasted`: how long the subscription was up (zero when it never was).
    Failed {
        e: QueryError,
        lasted: Duration,
    },
}

/// Follows one node's events, reconnecting at once after a subscription that lived (Sentinel
/// kills every client of the replica it promotes, in the same transaction as `REPLICAOF NO
/// ONE`), else with a backoff.
async fn follow(plane: Arc<Backplane>, addr: String) {
    let mut backoff = Duration::from_millis(10);
    // The role seen on the last connection: a change across a reconnect is an event missed.
    let mut role: Option<String> = None;
    loop {
        match subscribe(&plane, &addr, &mut role).await {
            End::NoModule => {
                debug!(%addr, "no hive-module on this node: no failover push from it");
                tokio::time::sleep(NO_MODULE_RECHECK).await;
            }
            End::Failed { e, lasted } => {
                debug!(%addr, error = %e, "hive-module event subscription lost");
                if lasted >= Duration::from_secs(1) {
                    backoff = Duration::from_millis(10);
                    continue;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn subscribe(plane: &Backplane, addr: &str, role: &mut Option<String>) -> End {
    let failed = |e| End::Failed {
        e,
        lasted: Duration::ZERO,
    };
    let auth = plane.config.node_auth();
    let mut c = match plane.connector.control(addr, auth.as_ref()).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match has_module(&mut c).await {
        Ok(true) => {}
        Ok(false) => return End::NoModule,
        Err(e) => return failed(e),
    }
    let now = match c.call(&["ROLE"]).await {
        Ok(v) => match v.as_array().and_then(|a| a.first()).and_then(Value::as_str) {
            Some("master") => "master",
            _ => "replica",
        },
        Err(e) => return failed(e),
    };
    if role.as_deref().is_some_and(|r| r != now) {
        let ev = Event {
            event: "role_change".into(),
            role: now.into(),
            time_ms: 0,
        };
        on_event(plane, addr, &ev).await;
    }
    *role = Some(now.to_string());
    if let Err(e) = c.send(&["SUBSCRIBE", CHANNEL]).await {
        return failed(e);
    }
    let since = std::time::Instant::now();
    let lost = |e| End::Failed {
        e,
        lasted: since.elapsed(),
    };
    loop {
        let v = match c.read_pinging(Duration::from_secs(2)).await {
            Ok(v) => v,
            Err(e) => return lost(e),
        };
        let Some([kind, _, payload]) = v.as_array().and_then(|a| <&[Value; 3]>::try_from(a).ok())
        else {
            continue;
        };
        if kind.as_str() != Some("message") {
            continue;
        }
        if let Some(ev) = payload
            .as_bytes()
            .and_then(|p| serde_json::from_slice::<Event>(p).ok())
        {
            if ev.event == "role_change" {
                *role = Some(ev.role.clone());
            }
            on_event(plane, addr, &ev).await;
        }
    }
}

/// Whether the node behind `c` has hive-module (it knows `HIVE.TOPOLOGY`).
pub async fn has_module(c: &mut ControlConn) -> Result<bool, QueryError> {
    let v = c.call(&["COMMAND", "INFO", "hive.topology"]).await?;
    Ok(v.as_array()
        .and_then(|a| a.first())
        .is_some_and(|f| *f != Value::Nil))
}

/// Acts on one event from the node at `addr`.
pub async fn on_event(plane: &Backplane, addr: &str, ev: &Event) {
    UpstreamStats::add(&plane.stats.module_events, 1);
    info!(node = %addr, event = %ev.event, role = %ev.role, "hive-module event");
    let promoted = ev.role == "master";
    match ev.event.as_str() {
        "role_change" => {
            // In a cluster both the promoted node and the demoted one know the new map first.
            let followed = match plane.config.mode {
                Mode::Cluster => cluster::refresh_from(plane, addr).await,
                Mode::Sentinel if promoted => sentinel::on_promoted(plane, addr).await,
                _ => false,
            };
            if followed {
                UpstreamStats::add(&plane.stats.failover_pushes, 1);
            } else {
                plane.refresh.notify_one();
            }
        }
        "master_link_down" => {
            plane.reads.drop_replica(addr);
            plane.refresh.notify_one();
        }
        // `hive reshard` stored a new slot map on this master: read it now, not at the next poll.
        "slotmap" => plane.map_changed.notify_one(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_parses_the_module_json() {
        let ev: Event = serde_json::from_str(
            r#"{"event":"role_change","role":"master","master":null,"offset":7,"time_ms":9}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            Event {
                event: "role_change".into(),
                role: "master".into(),
                time_ms: 9
            }
        );
    }
}
