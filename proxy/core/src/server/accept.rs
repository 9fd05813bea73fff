//! Accepting clients within `max_clients`, and the graceful drain at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Shared;
use crate::client;
use crate::error::{ClientReason, ProxyError};
use crate::metrics::Stats;
use hive_upstream::stop::Stop;

/// A TLS handshake that takes longer than this is dropped (a client that connected and sent
/// nothing; plaintext sent to the TLS port fails the handshake at once).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts clients (over TLS with `tls`) until `shutdown` turns true.
pub(super) async fn accept(
    listener: TcpListener,
    tls: bool,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
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
                let _ = sock.set_nodelay(true);
                let local = sock.local_addr().unwrap_or(peer);
                if tls {
                    let Some(acceptor) = shared.tls.as_ref().map(|a| a.current()) else {
                        continue;
                    };
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        let s = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                Stats::add(&shared.stats.tls_handshake_failures, 1);
                                return debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                Stats::add(&shared.stats.tls_handshake_failures, 1);
                                return debug!(%peer, "TLS handshake timed out");
                            }
                        };
                        serve_or_refuse(s, peer, local, shared, shutdown).await;
                    });
                    continue;
                }
                if Stats::get(&stats.connected_clients) >= shared.live.load().proxy.max_clients as u64 {
                    Stats::add(&stats.rejected_connections, 1);
                    tokio::spawn(async move {
                        let _ = sock.write_all(&max_clients_reached()).await;
                    });
                    continue;
                }
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

/// Redis's reply to a connection past `maxclients`, rendered where every error is.
fn max_clients_reached() -> bytes::Bytes {
    ProxyError::client(ClientReason::MaxClients, "max number of clients reached").frame()
}

/// Serves a client whose TLS handshake is done, or tells it that `max_clients` is reached.
async fn serve_or_refuse<S>(
    mut s: S,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if Stats::get(&shared.stats.connected_clients) >= shared.live.load().proxy.max_clients as u64 {
        Stats::add(&shared.stats.rejected_connections, 1);
        let _ = s.write_all(&max_clients_reached()).await;
        let _ = s.shutdown().await;
        return;
    }
    client::start(s, peer, local, shared, shutdown).await;
}

/// Lets clients finish their in-flight requests, for at most `shutdown_grace_ms`.
pub(super) async fn drain(shared: &Shared) {
    let grace = Duration::from_millis(shared.live.load().proxy.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    while Stats::get(&shared.stats.connected_clients) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    info!(
        remaining = Stats::get(&shared.stats.connected_clients),
        "proxy stopped"
    );
}
