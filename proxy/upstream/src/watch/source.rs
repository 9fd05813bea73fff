//! Where the topology comes from, by `backend.mode`: the first read at startup and the task that
//! keeps it current.

use std::sync::Arc;

use hive_common::topology::{Shard, ShardMap};
use tokio::sync::watch;

use super::{cluster, sentinel};
use crate::config::Mode;
use crate::Backplane;

/// Reads the first topology; false if no node or sentinel answered yet (the background task
/// keeps trying, and requests wait or get `-CLUSTERDOWN`/`-TRYAGAIN` meanwhile).
pub async fn initial(plane: &Backplane) -> bool {
    match plane.config.mode {
        Mode::Cluster => cluster::refresh_once(plane).await,
        Mode::Sentinel => sentinel::refresh_all(plane).await,
        Mode::Static => {
            plane.topology.install(static_map(plane), Vec::new());
            true
        }
    }
}

/// Keeps the topology current until shutdown.
pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    match plane.config.mode {
        Mode::Cluster => cluster::run_refresher(plane, shutdown).await,
        Mode::Sentinel => sentinel::run(plane, shutdown).await,
        // Fixed by configuration: nothing to follow.
        Mode::Static => {
            let _ = shutdown.changed().await;
        }
    }
}

/// The configured static shards (validated at load time).
fn static_map(plane: &Backplane) -> ShardMap {
    let cfg = &plane.config;
    let ranges = cfg.shard_ranges().unwrap_or_default();
    let entries = cfg
        .shards
        .iter()
        .zip(ranges)
        .map(|(s, r)| {
            let shard = Shard {
                master: s.master.clone().unwrap_or_default(),
                replicas: s.replicas.clone(),
            };
            (shard, r)
        })
        .collect();
    ShardMap::new(entries).unwrap_or_else(|_| ShardMap::empty())
}
