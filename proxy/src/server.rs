//! The listener: accepts clients within `max_clients`, runs the topology refresher, and shuts
//! down gracefully, letting in-flight replies finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Config;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::upstream::source;

/// Binds the listener and reads the first topology (a failure there is logged, not fatal: the
/// refresher keeps trying and requests get `-CLUSTERDOWN` meanwhile).
pub async fn bind(config: Config) -> std::io::Result<(TcpListener, Arc<Shared>)> {
    let listener = TcpListener::bind(&config.proxy.listen).await?;
    let shared = Shared::new(config);
    if !source::initial(&shared).await {
        warn!(
            mode = shared.config.backend.mode.as_str(),
            "the topology is not complete yet; retrying in the background"
        );
    }
    Ok((listener, shared))
}

/// Serves until `shutdown` turns true, then waits up to `shutdown_grace_ms` for clients to get
/// their outstanding replies.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(source::run(shared.clone(), shutdown.clone()));
    let max = shared.config.proxy.max_clients as u64;
    let stats = shared.stats.clone();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (mut sock, _) = match r {
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
                Stats::add(&stats.connected_clients, 1);
                let (shared, stats, shutdown) = (shared.clone(), stats.clone(), shutdown.clone());
                tokio::spawn(async move {
                    crate::client::serve(sock, shared, shutdown).await;
                    stats.connected_clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let grace = Duration::from_millis(shared.config.proxy.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    while Stats::get(&stats.connected_clients) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    info!(
        remaining = Stats::get(&stats.connected_clients),
        "proxy stopped"
    );
}

/// A proxy running on its own runtime threads; stops (gracefully) when dropped. Used by
/// `hive up` and the tests.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyHandle {
    pub fn start(config: Config) -> std::io::Result<ProxyHandle> {
        let rt = runtime(config.proxy.threads)?;
        let (listener, shared) = rt.block_on(bind(config))?;
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hive-proxy".into())
            .spawn(move || rt.block_on(serve(listener, s2, rx)))?;
        Ok(ProxyHandle {
            addr,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A multi-thread runtime with `threads` workers (0 = one per CPU).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        b.worker_threads(threads);
    }
    b.enable_all().thread_name("hive-worker").build()
}
