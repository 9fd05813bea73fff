//! The tracking feed: while any client tracks, or the near cache is on, one connection per
//! master in RESP3 with `CLIENT TRACKING ON BCAST` (no prefix: every key the master changes),
//! whose `invalidate` pushes go to the `Tracker` and the near cache. Broadcast mode keeps no table on the nodes and needs nothing on
//! Hive's data connections; it costs one push per write on each master while a client tracks.
//! A lost connection or a change of masters restarts the feed, then flushes every tracking
//! client and empties the near cache: what changed meanwhile was not reported. Slots that move
//! between masters that stay drop their near-cache entries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hive_common::resp::Value;
use hive_upstream::conn::control::QueryError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::state::Shared;

/// Whether every master's feed is up: CLIENT TRACKING ON waits for it, so no change made
/// after its `+OK` goes unreported.
#[derive(Default)]
pub struct Ready(AtomicBool);

impl Ready {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

fn masters(shared: &Shared) -> Vec<String> {
    let mut m = shared.plane.topology.load().masters();
    m.sort();
    m.dedup();
    m
}

/// Which master serves each slot (`None`: no master).
fn owners(shared: &Shared) -> Vec<Option<String>> {
    let topo = shared.plane.topology.load();
    (0..hive_common::SLOT_COUNT)
        .map(|s| {
            hive_common::Slot::new(s)
                .and_then(|s| topo.map.shard_of(s))
                .map(|i| topo.map.shards()[i].master.clone())
        })
        .collect()
}

/// The feed is needed: a client tracks, or the near cache is on.
fn needed(shared: &Shared) -> bool {
    shared.tracking.active() || shared.cache.is_some()
}

/// Runs until shutdown: idle while nobody tracks and the near cache is off.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let tracker = &shared.tracking;
    let mut topology = shared.plane.topology.changes();
    // A feed was up before: the next one to come up must flush the clients.
    let mut was_up = false;
    loop {
        while !needed(&shared) {
            tokio::select! {
                _ = tracker.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
        let nodes = masters(&shared);
        let mut owned = owners(&shared);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
        let mut set = JoinSet::new();
        for node in nodes.clone() {
            set.spawn(follow(shared.clone(), node, ready_tx.clone()));
        }
        let mut up = 0;
        let mut idle = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Some(()) = ready_rx.recv() => {
                    up += 1;
                    if up == nodes.len() && !nodes.is_empty() {
                        if was_up {
                            tracker.flush();
                        }
                        was_up = true;
                        shared.tracking_ready.0.store(true, Ordering::Release);
                        if let Some(c) = &shared.cache {
                            c.set_ready(true);
                        }
                        info!(masters = up, "tracking feed up");
                    }
                }
                Some(ended) = set.join_next() => {
                    debug!(?ended, "tracking feed connection ended");
                    break;
                }
                _ = topology.changed() => {
                    if masters(&shared) != nodes {
                        break;
                    }
                    // Slots that moved between masters: what the cache holds of them came
                    // from a node that no longer serves them.
                    let now = owners(&shared);
                    if let Some(c) = shared.cache.as_ref().filter(|_| now != owned) {
                        let moved: Vec<bool> = owned.iter().zip(&now).map(|(a, b)| a != b).collect();
                        c.flush_slots(&moved);
                    }
                    owned = now;
                }
                _ = idle.tick() => {
                    if !needed(&shared) {
                        break;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
        shared.tracking_ready.0.store(false, Ordering::Release);
        if let Some(c) = &shared.cache {
            c.set_ready(false);
        }
        set.abort_all();
        if nodes.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !tracker.active() {
            // Nobody tracks: nothing cached to flush; the next client starts afresh.
            was_up = false;
        }
    }
}

/// One master's feed, until its connection fails.
async fn follow(shared: Arc<Shared>, node: String, ready: mpsc::UnboundedSender<()>) -> QueryError {
    match follow_inner(&shared, &node, &ready).await {
        Ok(never) => match never {},
        Err(e) => {
            // A failed connect is retried by the supervisor; pace it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            e
        }
    }
}

enum Never {}

async fn follow_inner(
    shared: &Shared,
    node: &str,
    ready: &mpsc::UnboundedSender<()>,
) -> Result<Never, QueryError> {
    let auth = shared.plane.config.node_auth();
    let mut c = shared.plane.connector.control(node, auth.as_ref()).await?;
    c.call(&["HELLO", "3"]).await?;
    c.call(&["CLIENT", "TRACKING", "ON", "BCAST"]).await?;
    let _ = ready.send(());
    loop {
        let v = c.read_pinging(Duration::from_secs(2)).await?;
        let Value::Push(parts) = v else { continue };
        if parts.first().and_then(Value::as_bytes) != Some(b"invalidate") {
            continue;
        }
        match parts.get(1) {
            Some(Value::Array(keys)) => {
                let keys: Vec<Bytes> = keys
                    .iter()
                    .filter_map(|k| k.as_bytes().map(Bytes::copy_from_slice))
                    .collect();
                if let Some(c) = &shared.cache {
                    c.invalidate(&keys);
                }
                shared.tracking.invalidate(&keys);
            }
            // FLUSHALL or FLUSHDB on the node.
            Some(Value::Nil) => {
                if let Some(c) = &shared.cache {
                    c.flush();
                }
                shared.tracking.flush()
            }
            _ => {}
        }
    }
}
