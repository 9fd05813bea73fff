//! A TCP fault relay for the faults this kernel has no qdisc for (no netem here): put in a
//! path, it forwards each direction of every connection and can delay, lose, stall or cut it.
//! Nodes announce the relay's address (`replica-announce-ip`, `cluster-announce-ip`, the
//! sentinels' `monitor` address), so every peer reaches them through it.
//!
//! "Loss" on a byte stream: TCP never drops bytes, it retransmits them after its timeout, and
//! everything behind a lost segment waits for it. So a lost chunk is held for one
//! retransmission timeout (`retransmit_after`) and the chunks after it queue behind it, which
//! is what an application sees of a lossy link.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What happens to the bytes of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// Added to every chunk, in order.
    pub delay: Duration,
    /// The share of chunks lost (0.0..=1.0): each is held for a retransmission timeout.
    pub loss: f64,
    /// Nothing is delivered while set; it is delivered, in order, when cleared.
    pub stall: bool,
}

/// Both directions, and whether the link is cut (every connection closed, new ones refused).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Client → target.
    pub up: LinkFaults,
    /// Target → client.
    pub down: LinkFaults,
    pub cut: bool,
}

/// Linux's retransmission timeout for a path of this one-way delay: the round trip plus its
/// 200 ms floor for the variance term.
pub fn retransmit_after(delay: Duration) -> Duration {
    delay * 2 + Duration::from_millis(200)
}

/// A running relay; stops on Drop.
pub struct Relay {
    /// Where it listens, one per route, in the order given.
    pub listen: Vec<SocketAddr>,
    faults: watch::Sender<Faults>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying each `(listen, target)` route, from a thread of its own that first
    /// enters the network namespace at `netns` (a `/run/netns/…` path) when given.
    pub fn start(netns: Option<PathBuf>, routes: &[(SocketAddr, SocketAddr)]) -> Result<Relay> {
        let (faults, rx) = watch::channel(Faults::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel::<Result<Vec<SocketAddr>>>();
        let routes = routes.to_vec();
        let thread = std::thread::spawn(move || {
            let run = || -> Result<(tokio::runtime::Runtime, Vec<(TcpListener, SocketAddr)>)> {
                if let Some(path) = &netns {
                    let f = std::fs::File::open(path)
                        .with_context(|| format!("open {}", path.display()))?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("setns {}", path.display()))?;
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let listeners = rt.block_on(async {
                    let mut ls = Vec::new();
                    for (at, to) in &routes {
                        let l = TcpListener::bind(at)
                            .await
                            .with_context(|| format!("relay bind {at}"))?;
                        ls.push((l, *to));
                    }
                    anyhow::Ok(ls)
                })?;
                Ok((rt, listeners))
            };
            let (rt, listeners) = match run() {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let addrs = listeners
                .iter()
                .filter_map(|(l, _)| l.local_addr().ok())
                .collect();
            let _ = ready.send(Ok(addrs));
            rt.block_on(async move {
                for (l, to) in listeners {
                    tokio::spawn(accept(l, to, rx.clone()));
                }
                let _ = stopped.await;
            });
        });
        let listen = bound.recv().context("the relay's thread")??;
        Ok(Relay {
            listen,
            faults,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Applies `f` from now on (chunks already queued keep their delivery time).
    pub fn set(&self, f: Faults) {
        self.faults.send_replace(f);
    }

    /// The faults now applied.
    pub fn faults(&self) -> Faults {
        *self.faults.borrow()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(l: TcpListener, to: SocketAddr, faults: watch::Receiver<Faults>) {
    while let Ok((client, _)) = l.accept().await {
        if faults.borrow().cut {
            // Refused: the peer sees its connection closed at once.
            continue;
        }
        tokio::spawn(relay_one(client, to, faults.clone()));
    }
}

async fn relay_one(client: TcpStream, to: SocketAddr, mut faults: watch::Receiver<Faults>) {
    let Ok(Ok(target)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await
    else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (tr, tw) = target.into_split();
    let up = pump(cr, tw, faults.clone(), |f| f.up);
    let down = pump(tr, cw, faults.clone(), |f| f.down);
    let cut = async {
        // Returns when the link is cut, or never once the relay is gone.
        if faults.wait_for(|f| f.cut).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut => {}
    }
}

/// One direction: a reader that stamps each chunk with its delivery time, and a writer that
/// delivers in order at that time, unless stalled. At most 256 chunks of 16 KiB wait, so a
/// stalled link pushes back on its sender instead of growing.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    faults: watch::Receiver<Faults>,
    side: fn(&Faults) -> LinkFaults,
) where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(256);
    let stamps = faults.clone();
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let f = side(&stamps.borrow());
            let mut hold = f.delay;
            if f.loss > 0.0 && rand::random::<f64>() < f.loss {
                hold += retransmit_after(f.delay);
            }
            // Order holds: a chunk is never delivered before the one ahead of it.
            last = last.max(Instant::now() + hold);
            if tx.send((last, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut stalls = faults;
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if stalls.wait_for(|f| !side(f).stall).await.is_err() {
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
