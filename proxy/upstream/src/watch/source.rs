//! Where the topology comes from, by `backend.mode`: the first read at startup and the task that
//! keeps it current.

use std::sync::Arc;

use hive_common::topology::ShardMap;
use tokio::sync::watch;

use super::{cluster, deployed, sentinel};
use crate::config::Mode;
use crate::Backplane;

/// Reads the first topology; false if no node or sentinel answered yet (the background task
/// keeps trying, and requests wait or get `-CLUSTERDOWN`/`-TRYAGAIN` meanwhile).
pub async fn initial(plane: &Backplane) -> bool {
    match plane.config.mode {
        Mode::Cluster => cluster::refresh_once(plane).await,
        Mode::Sentinel => {
            let ok = sentinel::refresh_all(plane).await;
            // A Hive started mid-move routes by the deployment's map from its first request.
            if deployed::poll(plane).await {
                return sentinel::refresh_all(plane).await;
            }
            ok
        }
        Mode::Static => {
            plane.topology.install(static_map(plane), Vec::new());
            if deployed::poll(plane).await {
                plane.topology.install(static_map(plane), Vec::new());
            }
            true
        }
    }
}

/// Keeps the topology current until shutdown.
pub async fn run(plane: Arc<Backplane>, shutdown: watch::Receiver<bool>) {
    match plane.config.mode {
        Mode::Cluster => cluster::run_refresher(plane, shutdown).await,
        Mode::Sentinel => {
            tokio::spawn(deployed::run(plane.clone(), shutdown.clone()));
            sentinel::run(plane, shutdown).await
        }
        Mode::Static => deployed::run(plane, shutdown).await,
    }
}

/// Static mode's shards: `hive.toml`'s, or the deployment's own slot map once it has one.
fn static_map(plane: &Backplane) -> ShardMap {
    plane.layout.load().static_map()
}
