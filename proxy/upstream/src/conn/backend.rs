//! A pipelined connection to one Redis node: shared by every client of a worker thread, or
//! dedicated to one client (transactions with WATCH, blocking commands, pub/sub).
//!
//! Requests are written in arrival order and replies are matched FIFO. If the connection dies
//! or a reply is overdue, every request in flight gets an error and the next request
//! reconnects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hive_common::resp::ReplyScanner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, warn};

use super::control::ControlConn;
use super::inflight::{lock, push_job, InFlight, Queue};
use super::{Auth, Inbox, Job, Proto};
use crate::error::{ProxyError, UpstreamReason};
use crate::reply_error::qualify;
use crate::stats::backends::ConnState;
use crate::stats::UpstreamStats;
use crate::stop::Stop;
use crate::stream::{BoxStream, Dialer};
use hive_common::pubsub::is_message;

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
}

pub use super::sink::PushSink;

/// Handle to a backend connection task. Cloning the `Arc` is the only per-request cost.
#[derive(Debug)]
pub struct Backend {
    pub addr: Arc<str>,
    tx: mpsc::UnboundedSender<Job>,
    /// Set by the connection while a large reply streams on it; only this worker thread
    /// writes and reads it.
    handoff: Arc<AtomicBool>,
    /// The node's id for this connection (`CLIENT ID`, with `ask_id`); -1 until known.
    node_id: Arc<AtomicI64>,
}

impl Backend {
    /// Starts the connection task. `on_failure` is notified whenever the node cannot be reached,
    /// so the topology is re-read.
    pub fn spawn(
        addr: Arc<str>,
        opts: BackendOpts,
        on_failure: Arc<Notify>,
        stats: Arc<UpstreamStats>,
    ) -> Arc<Backend> {
        let (tx, rx) = mpsc::unbounded_channel();
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
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
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
    rx: mpsc::UnboundedReceiver<Job>,
    /// Taken from `rx` but not yet written; the next connection sends it first.
    carry: Option<Job>,
    handoff: Arc<AtomicBool>,
    node_id: Arc<AtomicI64>,
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
            let queue: Queue = Mutex::new(VecDeque::new());
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
            let lost: Vec<InFlight> = lock(&queue).drain(..).collect();
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
        while let Ok(job) = self.rx.try_recv() {
            self.fail_job(job, why);
        }
    }

    /// Runs one connection until it fails (`Some(reason)`) or every sender is gone (`None`).
    async fn serve(&mut self, stream: BoxStream, first: Job, queue: &Queue) -> Option<String> {
        let (mut rd, mut wr) = stream.into_halves();
        let timeout = self.opts.command_timeout;
        let rx = &mut self.rx;
        // A job held across the yield below lives in `carry`, not in the writer future: if the
        // reader fails meanwhile, dropping the writer would otherwise drop the job and leave
        // its client without a reply. The next connection starts with it (it was never sent).
        let held = &mut self.carry;
        *held = Some(first);
        // Atomics only because the task must be `Send`; reader and writer share one task.
        let draining = AtomicBool::new(false);
        let writer = async {
            let mut wbuf = BytesMut::with_capacity(16 * 1024);
            let mut batch: Vec<InFlight> = Vec::with_capacity(64);
            loop {
                if held.is_none() {
                    *held = Some(rx.recv().await?);
                    // Let the worker poll its sockets once more before writing, so the
                    // requests that other clients have already sent join this write. At P1
                    // this halved the backend writes and raised GET from 57k to 75k req/s
                    // (benches/README.md); at -c 1 it costs no measurable latency.
                    tokio::task::yield_now().await;
                }
                let Some(job) = held.take() else { continue };
                let now = Instant::now();
                let mut large = push_job(&mut wbuf, &mut batch, job, now);
                while large.is_none() && batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(j) => large = push_job(&mut wbuf, &mut batch, j, now),
                        Err(_) => break,
                    }
                }
                let written = batch.len();
                // Only a large write can take long enough to matter to the timeout (a small one
                // goes into the socket buffer at once), so only one pays for a second clock
                // read (callgrind, issue 27).
                let big = large.is_some() || wbuf.len() >= 64 * 1024;
                // Queue before writing, so no reply can arrive ahead of its entry.
                lock(queue).extend(batch.drain(..));
                if let Err(e) = wr.write_all(&wbuf).await {
                    return Some(format!("write failed: {e}"));
                }
                // A large request is written from the client's buffer, not copied.
                if let Some(data) = large {
                    // In slices, letting the worker's other tasks run between them.
                    for part in data.chunks(crate::BURST) {
                        if let Err(e) = wr.write_all(part).await {
                            return Some(format!("write failed: {e}"));
                        }
                        tokio::task::yield_now().await;
                    }
                }
                // The timeout counts from the write; only a slow write is worth the update.
                let after = if big { Instant::now() } else { now };
                if after - now > Duration::from_millis(1) {
                    for f in lock(queue).iter_mut().rev().take(written) {
                        f.sent = after;
                    }
                }
                wbuf.clear();
                if wbuf.capacity() > 1 << 20 {
                    wbuf = BytesMut::with_capacity(16 * 1024);
                }
            }
        };
        let push = self.opts.push.clone();
        let addr = &*self.addr;
        let hand_off = self.opts.hand_off_at;
        let self_handoff = &*self.handoff;
        let stats = &*self.stats;
        let reader = async {
            let mut rbuf = BytesMut::with_capacity(16 * 1024);
            let mut scanner = ReplyScanner::default();
            let mut frames: Vec<Bytes> = Vec::with_capacity(64);
            let mut done: Vec<(InFlight, Bytes)> = Vec::with_capacity(64);
            let idle = timeout.unwrap_or(Duration::from_secs(3600));
            let mut burst = 0usize;
            // One timer for the connection's life, re-armed when it fires: a timeout per read
            // registered and removed a timer-wheel entry for every read. It is re-armed at the
            // oldest request's deadline (written at `sent`), so the timeout is exact.
            let check = tokio::time::sleep(idle);
            tokio::pin!(check);
            // When the node last sent bytes that left a request waiting: a request is overdue
            // only when the node has sent nothing for the whole timeout, so a connection
            // streaming a large reply (or answering a deep pipeline) is never mistaken for a
            // dead one. A read that answers everything queued needs no reading of the clock
            // (every later request is sent after it): at P1 that saved a clock read per
            // request (callgrind, issue 27).
            let mut alive_at = Instant::now();
            loop {
                if rbuf.capacity() - rbuf.len() < 4096 {
                    rbuf.reserve(16 * 1024);
                }
                // One burst at most per read (as the client side reads, and why).
                let mut window = (&mut rbuf).limit(crate::BURST);
                let n = tokio::select! {
                    biased;
                    r = rd.read_buf(&mut window) => match r {
                        Ok(0) => return "closed by the server".to_string(),
                        Ok(n) => n,
                        Err(e) => return format!("read failed: {e}"),
                    },
                    _ = &mut check => {
                        let now = Instant::now();
                        let front = lock(queue).front().map(|f| f.sent.max(alive_at));
                        let next = match (timeout, front) {
                            (Some(t), Some(sent)) if now.saturating_duration_since(sent) >= t => {
                                return format!("no reply within {} ms", t.as_millis());
                            }
                            (Some(t), Some(sent)) => sent + t,
                            _ => now + idle,
                        };
                        check.as_mut().reset(next.into());
                        continue;
                    }
                };
                debug_assert!(n > 0);
                burst += n;
                if burst >= crate::BURST {
                    // As the client task does: a large reply must not keep the worker.
                    burst = 0;
                    tokio::task::yield_now().await;
                }
                // Small frames are copied out of a buffer a large reply grew, so that they do
                // not keep all of it alive while they wait for their client.
                let grown = rbuf.capacity() > 1 << 20;
                loop {
                    match scanner.scan(&rbuf) {
                        Ok(Some(len)) if grown && len < 16 * 1024 => {
                            frames.push(Bytes::copy_from_slice(&rbuf[..len]));
                            rbuf.advance(len);
                        }
                        Ok(Some(len)) => frames.push(rbuf.split_to(len).freeze()),
                        Ok(None) => break,
                        Err(e) => return format!("bad reply: {e}"),
                    }
                }
                if rbuf.is_empty() && rbuf.capacity() > 1 << 20 {
                    rbuf = BytesMut::with_capacity(16 * 1024);
                }
                if let Some(at) = hand_off {
                    if rbuf.len() >= at && !self_handoff.load(Ordering::Relaxed) {
                        self_handoff.store(true, Ordering::Relaxed);
                        UpstreamStats::add(&stats.large_reply_handoffs, 1);
                        debug!(backend = %addr, bytes = rbuf.len(), "large reply: new requests go to another connection");
                    }
                }
                if frames.is_empty() {
                    if timeout.is_some() {
                        alive_at = Instant::now();
                    }
                    continue;
                }
                let mut q = lock(queue);
                let mut stray = false;
                for mut frame in frames.drain(..) {
                    if frame.first() == Some(&b'-') {
                        frame = qualify(frame, addr);
                    }
                    if let Some(p) = &push {
                        if is_message(&frame) {
                            if !p.passes(&frame) {
                                continue;
                            }
                            let total = p.queued.fetch_add(frame.len(), Ordering::Relaxed);
                            if total + frame.len() > p.limit {
                                p.kill.raise(Stop::Kill);
                            }
                            let _ = p.tx.send(Inbox::Push { frame });
                            continue;
                        }
                    }
                    let Some(front) = q.front_mut() else {
                        stray = true;
                        break;
                    };
                    if front.left > 1 {
                        front.left -= 1;
                        front
                            .acc
                            .get_or_insert_with(BytesMut::new)
                            .extend_from_slice(&frame);
                        continue;
                    }
                    let Some(mut f) = q.pop_front() else { break };
                    let frame = match f.acc.take() {
                        Some(mut a) => {
                            a.extend_from_slice(&frame);
                            a.freeze()
                        }
                        None => frame,
                    };
                    done.push((f, frame));
                }
                if timeout.is_some() && !q.is_empty() {
                    alive_at = Instant::now();
                }
                drop(q);
                if stray {
                    return "reply without a request (stream out of step)".to_string();
                }
                for (f, frame) in done.drain(..) {
                    if !f.skip {
                        let _ = f.reply.send(Inbox::Reply { tag: f.tag, frame });
                    }
                }
                if draining.load(Ordering::Relaxed) && lock(queue).is_empty() {
                    return String::new();
                }
            }
        };
        tokio::pin!(writer, reader);
        tokio::select! {
            r = &mut writer => match r {
                // Every handle is gone. A handed-off shared connection still answers what
                // it carries (bounded by the command timeout); a client's own closes now.
                None if hand_off.is_some() && !lock(queue).is_empty() => {
                    draining.store(true, Ordering::Relaxed);
                    let why = (&mut reader).await;
                    (!why.is_empty()).then_some(why)
                }
                r => r,
            },
            r = &mut reader => Some(r),
        }
    }
}
