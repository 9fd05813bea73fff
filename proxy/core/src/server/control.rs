//! The control plane on a thread and runtime of its own: the first topology read, then the
//! topology source, buffer eviction, the replica poller, the failover push, the admin HTTP
//! listener and the facts poller. A burst of clients or a `/metrics` render never delays a
//! failover, and no worker's clients wait behind a topology refresh.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use super::evict;
use crate::metrics::Stats;
use crate::state::Shared;
use hive_upstream::watch::{collect, push, replicas, source};

/// Starts the control thread. It reads the first topology before it meets the workers at
/// `ready`, so they accept clients with a map in place when one could be read.
pub(super) fn spawn(
    shared: Arc<Shared>,
    admin: Option<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
    ready: Arc<Barrier>,
) -> std::io::Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("hive-control".into())
        .spawn(move || {
            shared.plane.acknowledge_maps();
            if !rt.block_on(source::initial(&shared.plane)) {
                warn!(
                    mode = shared.config.backend.mode.as_str(),
                    "the topology is not complete yet; retrying in the background"
                );
            }
            ready.wait();
            rt.block_on(run(shared, admin, shutdown));
        })
}

async fn run(
    shared: Arc<Shared>,
    admin: Option<std::net::TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let plane = &shared.plane;
    tokio::spawn(source::run(plane.clone(), shutdown.clone()));
    tokio::spawn(evict::run(shared.clone(), shutdown.clone()));
    tokio::spawn(replicas::run(plane.clone(), shutdown.clone()));
    tokio::spawn(crate::fleet::run(shared.clone(), shutdown.clone()));
    tokio::spawn(crate::tracking::feed::run(shared.clone(), shutdown.clone()));
    if let Some(c) = &shared.cache {
        tokio::spawn(crate::cache::hot::run(
            c.clone(),
            shared.stats.clone(),
            shutdown.clone(),
        ));
    }
    if shared.config.backend.failover_push {
        tokio::spawn(push::run(plane.clone(), shutdown.clone()));
    }
    // The admin listener outlives the shutdown signal: it answers /readyz 503 while the
    // clients drain, so a load balancer or Kubernetes stops sending new ones.
    let (admin_stop, admin_stopped) = watch::channel(false);
    match admin.map(TcpListener::from_std) {
        Some(Ok(admin)) => {
            tokio::spawn(crate::admin::serve(admin, shared.clone(), admin_stopped));
            tokio::spawn(collect::run(plane.clone(), shutdown.clone()));
        }
        Some(Err(e)) => warn!(error = %e, "the admin listener cannot listen"),
        None => {}
    }
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    shared.draining.store(true, Ordering::Relaxed);
    if !shared.handed_over.load(Ordering::Relaxed) {
        let grace = Duration::from_millis(shared.live.load().proxy.shutdown_grace_ms);
        let deadline = Instant::now() + grace;
        while Stats::get(&shared.stats.connected_clients) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = admin_stop.send(true);
}
