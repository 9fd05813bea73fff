//! Accepting clients within `max_clients`, and the graceful drain at shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Shared;
use crate::client;
use crate::client::stop::Stop;
use crate::metrics::Stats;

/// Accepts clients until `shutdown` turns true.
pub(super) async fn accept(
    listener: TcpListener,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = shared.config.proxy.max_clients as u64;
    let stats = shared.stats.clone();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (mut sock, peer) = match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                Stats::add(&stats.connections_received, 1);
                if Stats::get(&stats.connected_clients) >= max {
                    Stats::add(&stats.rejected_connections, 1);
                    tokio::spawn(async move {
                        let _ = sock.write_all(b"-ERR max number of clients reached\r\n").await;
                    });
                    continue;
                }
                let _ = sock.set_nodelay(true);
                let local = sock.local_addr().unwrap_or(peer);
                tokio::spawn(client::start(sock, peer, local, shared.clone(), shutdown.clone()));
            }
            _ = shutdown.changed() => break,
        }
    }
    // Clients that connect from now on see the flag when they start.
    for c in shared.clients.all() {
        c.signal.raise(Stop::Drain);
    }
}

/// Lets clients finish their in-flight requests, for at most `shutdown_grace_ms`.
pub(super) async fn drain(shared: &Shared) {
    let grace = Duration::from_millis(shared.config.proxy.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    while Stats::get(&shared.stats.connected_clients) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    info!(
        remaining = Stats::get(&shared.stats.connected_clients),
        "proxy stopped"
    );
}
