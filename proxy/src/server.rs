//! The listener: one single-threaded runtime per worker thread, each accepting clients within
//! `max_clients` and owning its backend connections; thread 0 also keeps the topology. Shutdown
//! is graceful: in-flight replies finish.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Config;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::upstream::source;

/// A running proxy: its address, shared state and worker threads.
pub struct Running {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until every worker has stopped (after `shutdown` turned true).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Binds the listener, reads the first topology (a failure there is logged, not fatal: the
/// refresher keeps trying and requests wait or get an error meanwhile), and starts the workers.
/// Returns once the proxy accepts clients.
pub fn start(config: Config, shutdown: watch::Receiver<bool>) -> std::io::Result<Running> {
    let listener = std::net::TcpListener::bind(&config.proxy.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let n = match config.proxy.threads {
        // Half the CPUs: the proxy shares its host with the clients it serves (a sidecar) or
        // with Redis. On 2 cores with redis-benchmark and the servers beside it, one thread
        // gave 1.2x the GET P1 throughput of two (benches/README.md).
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        t => t,
    };
    let shared = Shared::new(config);
    let ready = Arc::new(Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (listener, shared, shutdown, ready) = (
            listener.try_clone()?,
            shared.clone(),
            shutdown.clone(),
            ready.clone(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("hive-worker-{i}"))
                .spawn(move || worker(i, rt, listener, shared, shutdown, ready))?,
        );
    }
    ready.wait();
    Ok(Running {
        addr,
        shared,
        threads,
    })
}

fn worker(
    i: usize,
    rt: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    ready: Arc<Barrier>,
) {
    if i == 0 && !rt.block_on(source::initial(&shared)) {
        warn!(
            mode = shared.config.backend.mode.as_str(),
            "the topology is not complete yet; retrying in the background"
        );
    }
    ready.wait();
    rt.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return warn!(error = %e, "worker cannot listen"),
        };
        if i == 0 {
            tokio::spawn(source::run(shared.clone(), shutdown.clone()));
        }
        accept(listener, &shared, shutdown).await;
        drain(&shared).await;
    });
}

/// Accepts clients until `shutdown` turns true.
async fn accept(listener: TcpListener, shared: &Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
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
    // Clients that connect from now on see the flag when they start.
    for c in shared.clients.all() {
        c.signal.raise(crate::signal::Stop::Drain);
    }
}

/// Lets clients finish their in-flight requests, for at most `shutdown_grace_ms`.
async fn drain(shared: &Shared) {
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

/// A proxy for `hive up` and the tests; stops (gracefully) when dropped.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    running: Option<Running>,
}

impl ProxyHandle {
    pub fn start(config: Config) -> std::io::Result<ProxyHandle> {
        let (stop, rx) = watch::channel(false);
        let running = start(config, rx)?;
        Ok(ProxyHandle {
            addr: running.addr,
            shared: running.shared.clone(),
            stop,
            running: Some(running),
        })
    }

    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(r) = self.running.take() {
            r.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
