//! A pipelined connection to one Redis node: shared by every client of a worker thread, or
//! dedicated to one client (transactions with WATCH, blocking commands, pub/sub).
//!
//! Requests are written in arrival order and replies are matched FIFO. If the connection dies
//! or a reply is overdue, every request in flight gets an error and the next request
//! reconnects.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{debug, warn};

mod ack;
mod inflight;
mod serve;

pub use ack::AckOpts;

use super::control::ControlConn;
use super::{Auth, Inbox, Job, Proto};
use crate::error::{ProxyError, UpstreamReason};
use crate::stats::backends::ConnState;
use crate::stats::UpstreamStats;
use crate::stream::{BoxStream, Dialer};
use inflight::{lock, InFlight, Queue};

#[derive(Clone)]
pub struct BackendOpts {
    pub connect_timeout: Duration,
    /// `None` on dedicated connections: a blocking command may legitimately wait forever.
    pub command_timeout: Option<Duration>,
    pub auth: Option<Auth>,
    /// RESP3 connections carry the replies of clients that sent `HELLO 3`.
    pub proto: Proto,
    /// Pub/sub connections deliver messages here instead of matching them to requests.
    pub push: Option<PushSink>,
    /// Opens the connection (TCP, or another stream behind the seam).
    pub dialer: Arc<dyn Dialer>,
    /// Shared connections: a reply this long hands the connection off (`Backend::handed_off`)
    /// so new requests go to a fresh one instead of queueing behind it, and the connection
    /// answers what it carries before it closes.
    pub hand_off_at: Option<usize>,
    /// Sends `READONLY` first: a connection to a cluster replica that serves reads.
    pub readonly: bool,
    /// Asks `CLIENT ID` on connect (a client's own connections), so a command blocked on it
    /// can be released with `CLIENT UNBLOCK` from another connection.
    pub ask_id: bool,
    /// `write_ack = "replica"`: writes are confirmed with WAIT before they are answered.
    pub ack: Option<AckOpts>,
}

pub use super::sink::PushSink;

/// Handle to a backend connection task. Cloning the `Arc` is the only per-request cost.
#[derive(Debug)]
pub struct Backend {
    pub addr: Arc<str>,
    tx: crate::mailbox::Sender<Job>,
    /// Set by the connection while a large reply streams on it; only this worker thread
    /// writes and reads it.
    handoff: Arc<AtomicBool>,
    /// The node's id for this connection (`CLIENT ID`, with `ask_id`); -1 until known.
    node_id: Arc<AtomicI64>,
}

impl Backend {
    /// Starts the connection task. `on_failure` is notified whenever the node cannot be reached,
    /// so the topology is re-read.
    /// `demoted`: a shared master connection told when its node is demoted (`demote.rs`).
    pub fn spawn(
        addr: Arc<str>,
        opts: BackendOpts,
        on_failure: Arc<Notify>,
        stats: Arc<UpstreamStats>,
        demoted: Option<crate::conn::demote::Demoted>,
    ) -> Arc<Backend> {
        let (tx, rx) = crate::mailbox::channel();
        let handoff = Arc::new(AtomicBool::new(false));
        let node_id = Arc::new(AtomicI64::new(-1));
        let task = Task {
            addr: addr.clone(),
            opts,
            on_failure,
            stats,
            rx,
            carry: None,
            handoff: handoff.clone(),
            node_id: node_id.clone(),
            demoted,
        };
        tokio::spawn(task.run());
        Arc::new(Backend {
            addr,
            tx,
            handoff,
            node_id,
        })
    }

    /// The node's `CLIENT ID` for this connection, once connected (own connections only).
    pub fn node_client_id(&self) -> Option<i64> {
        Some(self.node_id.load(Ordering::Relaxed)).filter(|&id| id >= 0)
    }

    /// Whether new requests should go to another connection: this one is streaming a large
    /// reply, and whatever is written now would wait for all of it.
    pub fn handed_off(&self) -> bool {
        self.handoff.load(Ordering::Relaxed)
    }

    pub fn send(&self, job: Job) {
        if let Err(crate::mailbox::SendError(job)) = self.tx.send(job) {
            // Only after runtime shutdown; the client still gets an answer.
            let err = ProxyError::internal(format!("backend {} is shutting down", self.addr));
            let _ = job.reply.send(Inbox::Failed { tag: job.tag, err });
        }
    }
}

struct Task {
    addr: Arc<str>,
    opts: BackendOpts,
    on_failure: Arc<Notify>,
    stats: Arc<UpstreamStats>,
    rx: crate::mailbox::Receiver<Job>,
    /// Taken from `rx` but not yet written; the next connection sends it first.
    carry: Option<Job>,
    handoff: Arc<AtomicBool>,
    node_id: Arc<AtomicI64>,
    demoted: Option<crate::conn::demote::Demoted>,
}

/// After a failed connect, fail requests at once for this long instead of each one waiting
/// out its own connect timeout.
const DOWN_HOLD: Duration = Duration::from_millis(100);

impl Task {
    async fn run(mut self) {
        let mut state = None;
        self.run_states(&mut state).await;
        self.stats.backends.transition(&self.addr, state, None);
    }

    /// The connection's life; `state` is what `/metrics` counts it as.
    async fn run_states(&mut self, state: &mut Option<ConnState>) {
        let mut down_until: Option<Instant> = None;
        let states = self.stats.clone();
        let mut set = |to: Option<ConnState>, addr: &str| {
            states.backends.transition(addr, *state, to);
            *state = to;
        };
        loop {
            let first = match self.carry.take() {
                Some(j) => j,
                None => match self.rx.recv().await {
                    Some(j) => j,
                    None => return,
                },
            };
            if down_until.is_some_and(|t| Instant::now() < t) {
                self.fail_job(first, "is down (recent connect failed)");
                self.fail_queued("is down (recent connect failed)");
                continue;
            }
            let stream = match self.connect().await {
                Ok(s) => s,
                Err(reason) => {
                    warn!(backend = %self.addr, %reason, "connect failed");
                    set(Some(ConnState::Down), &self.addr);
                    UpstreamStats::add(&self.stats.backend_failures, 1);
                    self.on_failure.notify_one();
                    down_until = Some(Instant::now() + DOWN_HOLD);
                    let why = format!("unreachable: {reason}");
                    self.fail_job(first, &why);
                    self.fail_queued(&why);
                    continue;
                }
            };
            down_until = None;
            debug!(backend = %self.addr, "connected");
            set(Some(ConnState::Connected), &self.addr);
            let queue: Queue = Mutex::new(Default::default());
            let reason = self.serve(stream, first, &queue).await;
            set(None, &self.addr);
            let Some(reason) = reason else { return };
            warn!(backend = %self.addr, %reason, "connection lost");
            UpstreamStats::add(&self.stats.backend_failures, 1);
            self.on_failure.notify_one();
            if let Some(p) = &self.opts.push {
                // Subscriptions died with the connection; the client re-establishes them.
                let _ = p.tx.send(Inbox::Lost);
            }
            let mut flight = lock(&queue);
            let mut lost: Vec<InFlight> = flight.held.drain(..).map(|(f, _)| f).collect();
            lost.extend(flight.drain(..));
            drop(flight);
            for f in lost.into_iter().filter(|f| !f.skip) {
                // Written but unanswered: the outcome is unknown, so never retried.
                let err = ProxyError::upstream(
                    UpstreamReason::Lost,
                    format!("connection to backend {} lost: {reason}", self.addr),
                );
                let _ = f.reply.send(Inbox::Failed { tag: f.tag, err });
            }
        }
    }

    /// Connects and, when configured, authenticates before any request is written.
    async fn connect(&self) -> Result<BoxStream, String> {
        let t = self.opts.connect_timeout;
        let dialer = &*self.opts.dialer;
        let mut conn = ControlConn::dial(dialer, &self.addr, t, self.opts.auth.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        if self.opts.proto == Proto::Resp3 {
            conn.call(&["HELLO", "3"])
                .await
                .map_err(|e| e.to_string())?;
        }
        if self.opts.readonly {
            conn.call(&["READONLY"]).await.map_err(|e| e.to_string())?;
        }
        self.node_id.store(-1, Ordering::Relaxed);
        if self.opts.ask_id {
            let id = conn
                .call(&["CLIENT", "ID"])
                .await
                .map_err(|e| e.to_string())?;
            self.node_id
                .store(id.as_int().unwrap_or(-1), Ordering::Relaxed);
        }
        Ok(conn.into_stream())
    }

    fn fail_job(&self, job: Job, why: &str) {
        // Never sent, so retrying is safe: TRYAGAIN says so to the client.
        let err = ProxyError::upstream(
            UpstreamReason::Unreachable,
            format!("Hive: backend {} {why}", self.addr),
        );
        let _ = job.reply.send(Inbox::Failed { tag: job.tag, err });
    }

    fn fail_queued(&mut self, why: &str) {
        while let Some(job) = self.rx.try_recv() {
            self.fail_job(job, why);
        }
    }
}
