//! The composition root: one single-threaded runtime per worker thread, each accepting
//! clients within `max_clients` and owning its backend connections, and the control plane on
//! a thread of its own (`control`). Shutdown is graceful: in-flight replies finish.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::config::Config;

mod accept;
mod check;
mod control;
mod evict;
pub mod reload;

pub use crate::state::Shared;
pub use check::check;

/// A running proxy: its addresses, shared state and worker threads.
pub struct Running {
    /// The plaintext listener's address, or the TLS one's when plaintext is off.
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    /// Every listening socket (client, TLS, admin), for an upgrade to hand to the next process.
    pub sockets: Vec<std::net::TcpListener>,
    threads: Vec<JoinHandle<()>>,
}

/// The sockets a worker accepts on: plaintext, TLS, or both.
struct Listeners {
    plain: Option<std::net::TcpListener>,
    tls: Option<std::net::TcpListener>,
    /// The admin HTTP listener; the control thread serves it.
    admin: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds each configured address, or takes the `inherited` socket (systemd's socket
    /// activation) already listening on it. An inherited socket no address asks for is an
    /// error: systemd and the config disagree.
    fn bind(config: &Config, inherited: Vec<std::net::TcpListener>) -> std::io::Result<Listeners> {
        let mut inherited = inherited
            .into_iter()
            .map(|l| Ok((l.local_addr()?, l)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut bind = |a: &str| -> std::io::Result<std::net::TcpListener> {
            use std::net::ToSocketAddrs;
            let wanted: Vec<SocketAddr> = a.to_socket_addrs()?.collect();
            let l = match inherited.iter().position(|(at, _)| wanted.contains(at)) {
                Some(i) => inherited.remove(i).1,
                None => std::net::TcpListener::bind(a)?,
            };
            l.set_nonblocking(true)?;
            Ok(l)
        };
        let plain = match config.proxy.listen.as_str() {
            "" => None,
            a => Some(bind(a)?),
        };
        let tls = config
            .proxy
            .tls_listen
            .as_deref()
            .map(&mut bind)
            .transpose()?;
        if plain.is_none() && tls.is_none() {
            return Err(std::io::Error::other(
                "no listener: set proxy.listen or proxy.tls_listen",
            ));
        }
        let admin = config
            .proxy
            .admin_listen
            .as_deref()
            .map(&mut bind)
            .transpose()?;
        if let Some((at, _)) = inherited.first() {
            return Err(std::io::Error::other(format!(
                "socket activation passed a socket listening on {at}, and no listener of the \
                 config (proxy.listen, proxy.tls_listen, proxy.admin_listen) is on it"
            )));
        }
        Ok(Listeners { plain, tls, admin })
    }

    /// A worker's copy: the client listeners (the admin one stays with the control thread).
    fn for_worker(&self) -> std::io::Result<Listeners> {
        let c = |l: &Option<std::net::TcpListener>| l.as_ref().map(|l| l.try_clone()).transpose();
        Ok(Listeners {
            plain: c(&self.plain)?,
            tls: c(&self.tls)?,
            admin: None,
        })
    }
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
    start_with(config, Vec::new(), shutdown)
}

/// `start`, taking the listening sockets systemd passed (socket activation) for the
/// addresses they listen on, instead of binding those.
pub fn start_with(
    config: Config,
    inherited: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Running> {
    // The request clock calibrates itself on first use (quanta reads both clocks for a few
    // milliseconds): done here, so the first client request does not wait for it.
    hive_upstream::stats::clock();
    let listeners = Listeners::bind(&config, inherited)?;
    let tls_addr = listeners.tls.as_ref().map(|l| l.local_addr()).transpose()?;
    let admin_addr = listeners
        .admin
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let addr = match &listeners.plain {
        Some(l) => l.local_addr()?,
        None => tls_addr.expect("bind refuses to have no listener"),
    };
    let n = match config.proxy.threads {
        // Half the CPUs: the proxy shares its host with the clients it serves (a sidecar) or
        // with Redis. On 2 cores with redis-benchmark and the servers beside it, one thread
        // gave 1.2x the GET P1 throughput of two (benches/README.md).
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        t => t,
    };
    let shared = Shared::new(config).map_err(|e| std::io::Error::other(e.to_string()))?;
    let sockets = [&listeners.plain, &listeners.tls, &listeners.admin]
        .into_iter()
        .flatten()
        .map(|l| l.try_clone())
        .collect::<std::io::Result<Vec<_>>>()?;
    let ready = Arc::new(Barrier::new(n + 2));
    let mut threads = Vec::with_capacity(n + 1);
    let admin = listeners
        .admin
        .as_ref()
        .map(|l| l.try_clone())
        .transpose()?;
    threads.push(control::spawn(
        shared.clone(),
        admin,
        shutdown.clone(),
        ready.clone(),
    )?);
    for i in 0..n {
        let (listeners, shared, shutdown, ready) = (
            listeners.for_worker()?,
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
                .spawn(move || worker(rt, listeners, shared, shutdown, ready))?,
        );
    }
    ready.wait();
    Ok(Running {
        addr,
        tls_addr,
        admin_addr,
        shared,
        sockets,
        threads,
    })
}

fn worker(
    rt: tokio::runtime::Runtime,
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    ready: Arc<Barrier>,
) {
    ready.wait();
    rt.block_on(async move {
        let tokio_listener = |l: Option<std::net::TcpListener>| match l.map(TcpListener::from_std) {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                warn!(error = %e, "worker cannot listen");
                None
            }
            None => None,
        };
        let (plain, tls) = (
            tokio_listener(listeners.plain),
            tokio_listener(listeners.tls),
        );
        let plain = async {
            if let Some(l) = plain {
                accept::accept(l, false, &shared, shutdown.clone()).await;
            }
        };
        let tls = async {
            if let Some(l) = tls {
                accept::accept(l, true, &shared, shutdown.clone()).await;
            }
        };
        tokio::join!(plain, tls);
        accept::drain(&shared).await;
    });
}

/// A proxy for `hive up` and the tests; stops (gracefully) when dropped.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
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
            tls_addr: running.tls_addr,
            admin_addr: running.admin_addr,
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
