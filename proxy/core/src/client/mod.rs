//! One client connection. The path of one `GET k`:
//! 1. `serve` (here) reads a batch and `pump` decodes each request;
//! 2. `dispatch` classifies it (`command::classify`) and `run` hands it to its handler:
//!    `forward` (one slot), `fanout` (split or every master), `transaction`, `blocking`,
//!    `subscriber`, `scan`, or a command answered locally (`command::local`);
//! 3. `pending` queues it in request order and `send::forward::send` gives it to a backend;
//! 4. the backend's reply comes back through `on_inbox` (`redirect`), which follows MOVED/ASK
//!    and waits out failovers, then completes the pending entry;
//! 5. `flush` (in `pending`) writes every finished reply at the head of the queue.

mod dispatch;
mod limits;
pub mod local;
mod modes;
mod outbox;
mod pending;
mod permit;
mod send;
pub mod session;
pub use hive_upstream::stop;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use hive_common::command::KeyPositions;
use hive_common::resp::{Request, RequestDecoder};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use crate::command::classify::Action;
use crate::command::local_cmd::LocalCmd;
use crate::error::{ClientReason, ErrorKind};
use crate::metrics::worker::WorkerStats;
use crate::metrics::Stats;
use crate::state::Shared;
use hive_upstream::conn::backend::Backend;
use hive_upstream::{mailbox, Inbox, ReplyTx};
use local::{After, Ctx};

use crate::state::registry::ClientEntry;
use limits::OutputGuard;
use modes::subscriber::Subscriber;
use modes::transaction::{Multi, Watch};
use outbox::{Io, Outbox, ReadOrWrite};
use pending::Pending;
pub use permit::{guarded, ClientSlot};
use send::consistency::{Acks, Writes};
use send::holds::{held_due, Holds};
use send::large::Large;
use session::Session;
use stop::Stop;

/// The proxy side of one client connection (the backend side is `upstream::backend::Backend`).
struct Conn {
    shared: Arc<Shared>,
    entry: Arc<ClientEntry>,
    session: Session,
    decoder: RequestDecoder,
    pending: VecDeque<Pending>,
    /// Sequence number of `pending[0]`.
    base: u64,
    /// Where backends send replies. Created with the first forwarded request, so an idle
    /// connection costs no channel (measured: ~2.5 KiB each).
    tx: Option<ReplyTx>,
    /// The receiving end of a channel just created, for the serve loop to pick up.
    new_rx: Option<mailbox::Receiver<Inbox>>,
    keys: KeyPositions,
    /// Stop reading; close once every accepted request has its reply (QUIT, protocol error,
    /// shutdown).
    closing: bool,
    /// Connections of this client's own (blocking commands), by address. Dropping one closes
    /// it, which unblocks the command on the node.
    own: Vec<Arc<Backend>>,
    /// Blocking commands on `own` connections, outside cluster mode (`modes::parked`).
    parked: Vec<modes::blocking::parked::Parked>,
    parked_following: bool,
    multi: Option<Box<Multi>>,
    watch: Option<Watch>,
    /// WATCH connections free for the next WATCH on their node (their watches cleared by EXEC
    /// or UNWATCH), so a transaction does not open a connection each time.
    watch_spare: Vec<Arc<hive_upstream::conn::backend::Backend>>,
    subs: Option<Box<Subscriber>>,
    /// A request waiting out CLIENT PAUSE; nothing after it is read until it goes.
    held: Option<Request>,
    /// `held` waits for CLIENT PAUSE: counted in INFO's `blocked_clients`, as Redis counts
    /// paused clients.
    paused: bool,
    /// Requests of this batch decoded, and those of them queued in MULTI (Redis counts those
    /// when EXEC runs them): added to the shared count once per batch.
    decoded: u64,
    queued: u64,
    /// Units waiting out a failover; made with the first one.
    holds: Option<Box<Holds>>,
    /// Bytes of replies that have arrived but wait behind an earlier, unanswered request.
    done_bytes: usize,
    large: Large,
    /// This worker's counters (written only by this thread).
    worker: Arc<WorkerStats>,
    /// `proxy.slowlog_slower_than_us`, `None` when the slow log is off.
    slow_us: Option<u64>,
    /// The clock's reading for this turn of the serve loop, taken by the first part of the
    /// turn that needs one (a read's activity time, a batch's start, a flush's latencies) and
    /// shared by the rest: one read per turn, not one per use (issue 27).
    turn_at: Option<u64>,
    clock: quanta::Clock,
    /// `backend.read_your_writes` as of this connection's start, and its writes.
    ryw: bool,
    writes: Writes,
    /// `backend.write_ack = "replica"`: which requests are confirmed, and on which lane.
    acks: Acks,
    /// CLIENT REPLY.
    replies: dispatch::Replies,
    /// The countdown to the next request sampled for hot and big keys.
    sample: crate::metrics::hotkeys::Countdown,
    /// Since when CLIENT TRACKING ON waits for the tracking feed.
    tracking_wait: Option<std::time::Instant>,
    /// The near cache's bookkeeping (`[cache]` on), made with the first request.
    near: Option<Box<modes::near_cache::NearConn>>,
    /// The read turn being decoded, stamped on its requests' entries (`pending::flushable`).
    batch: u32,
}

/// Takes a new client's slot at once (so the accept loop counts it against `max_clients`)
/// and returns the task that serves it until it disconnects, quits, is killed, or the proxy
/// shuts down.
pub fn start<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let entry = Arc::new(ClientEntry::new(id, peer, local));
    let slot = ClientSlot::take(&shared, entry.clone());
    guarded(shared.clone(), slot, serve(stream, entry, shared, shutdown))
}

async fn serve<S>(
    mut stream: S,
    entry: Arc<ClientEntry>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rx: Option<mailbox::Receiver<Inbox>> = None;
    // The config as of this connection's start (a reload applies to later connections).
    let live = shared.live.load_full();
    let cfg = &live.proxy;
    let max_pending = cfg.max_pending_per_client;
    let idle =
        (cfg.client_idle_timeout_s > 0).then(|| Duration::from_secs(cfg.client_idle_timeout_s));
    let signal = entry.signal.clone();
    let mut conn = Conn {
        session: Session::new(entry.id, &shared.auth),
        entry,
        decoder: RequestDecoder::new(live.limits()),
        shared: shared.clone(),
        pending: VecDeque::new(),
        base: 0,
        tx: None,
        new_rx: None,
        keys: KeyPositions::new(),
        closing: *shutdown.borrow(),
        own: Vec::new(),
        parked: Vec::new(),
        parked_following: false,
        multi: None,
        watch: None,
        watch_spare: Vec::new(),
        subs: None,
        held: None,
        paused: false,
        decoded: 0,
        queued: 0,
        holds: None,
        done_bytes: 0,
        large: Large::new(live.backend.large_value_bytes.0),
        worker: shared.stats.workers.current(),
        slow_us: shared.slowlog.threshold(),
        turn_at: None,
        clock: crate::metrics::worker::clock().clone(),
        ryw: live.backend.read_your_writes,
        writes: Writes::default(),
        acks: Acks::new(live.backend.write_ack == hive_upstream::config::WriteAck::Replica),
        replies: Default::default(),
        sample: crate::metrics::hotkeys::Countdown::new(cfg.hotkeys_sample_every),
        tracking_wait: None,
        near: None,
        batch: 0,
    };
    conn.session.read_from = live.backend.read_from;
    // Buffers start empty: an idle client holds no buffer pages.
    let mut rbuf = BytesMut::new();
    let mut out = Outbox::default();
    // Only with an idle timeout: without one, nothing needs a tokio clock reading per read.
    let mut last_active = Instant::now();
    let mut guard = OutputGuard::new(cfg.client_output_buffer_limit);
    let query_limit = cfg.client_query_buffer_limit.0;
    // Bytes read or written since this task last let others run (see below).
    let mut read_burst = 0usize;
    let mut work = 0usize;
    loop {
        if conn.closing && conn.pending.is_empty() && out.is_empty() {
            break;
        }
        conn.turn_at = None;
        // Past the soft output limit the client must read before it may send more.
        let backed_up = guard.backed_up(out.len() + conn.done_bytes);
        let can_read =
            !conn.closing && !backed_up && conn.pending.len() < max_pending && conn.held.is_none();
        if can_read && rbuf.capacity() - rbuf.len() < 512 {
            // Small first; pipelining clients grow it.
            rbuf.reserve(if rbuf.capacity() == 0 {
                2048
            } else {
                16 * 1024
            });
        }
        // A subscriber waits for messages, not requests: it is never idle.
        let idle_deadline = idle
            .filter(|_| conn.subs.is_none() && conn.held.is_none())
            .map(|d| last_active + d);
        // A held request looks at the pause again shortly (CLIENT UNPAUSE ends it early); a
        // client over its soft limit is looked at when the soft limit's time is up.
        let wake = match conn.held {
            Some(_) => Some(Instant::now() + Duration::from_millis(20)),
            None => guard.deadline(),
        };
        let io = ReadOrWrite {
            stream: &mut stream,
            rbuf: &mut rbuf,
            out: &mut out,
            read: can_read,
        };
        let mut wrote = false;
        tokio::select! {
            biased;
            // Shutdown raises `Drain` after it sets the flag that `closing` started from.
            stop = signal.raised(if conn.closing { Stop::Kill } else { Stop::Drain }) => {
                if stop == Stop::Kill {
                    break;
                }
                conn.closing = true;
            }
            Some(msg) = recv(&mut rx) => {
                conn.on_inbox(msg);
                work += 1;
                while let Some(m) = rx.as_mut().and_then(|r| r.try_recv()) {
                    conn.on_inbox(m);
                    work += 1;
                }
            }
            // Checked before the future is made: polling an empty queue's future every turn
            // cost ~90 instructions per request at P1 (callgrind, issue 27).
            due = held_due(&mut conn.holds), if conn.holds.as_ref().is_some_and(|h| !h.is_empty()) => {
                for tag in due {
                    conn.retry(tag);
                }
            }
            r = io => match r {
                Io::Read(Ok(0)) | Io::Read(Err(_)) | Io::Wrote(Err(_)) => break,
                Io::Read(Ok(n)) => {
                    read_burst += n;
                    conn.worker.bytes_in.add(n as u64);
                    if idle.is_some() {
                        last_active = Instant::now();
                    }
                    let now = conn.now();
                    conn.entry.touch(now);
                    if rbuf.len() > query_limit {
                        let _in = conn.entry.span.enter();
                        warn!(client = conn.entry.id, bytes = rbuf.len(),
                            "closing client that reached max query buffer length \
                             (proxy.client_query_buffer_limit)");
                        Stats::add(&shared.stats.query_limit_disconnects, 1);
                        break;
                    }
                }
                Io::Wrote(Ok(n)) => {
                    read_burst += n;
                    conn.worker.bytes_out.add(n as u64);
                    wrote = true;
                }
            },
            _ = sleep_until(idle_deadline), if idle_deadline.is_some() && conn.pending.is_empty() => break,
            _ = sleep_until(wake), if wake.is_some() => {}
        }
        if !wrote {
            work += conn.pump(&mut rbuf, max_pending);
            if let Some(r) = conn.new_rx.take() {
                rx = Some(r);
            }
            conn.flush(&mut out);
            if !out.is_empty() {
                // Most replies fit the socket at once: write them now, not a turn later.
                let now = ReadOrWrite {
                    stream: &mut stream,
                    rbuf: &mut rbuf,
                    out: &mut out,
                    read: false,
                };
                match now.now_or_never() {
                    Some(Io::Wrote(Err(_))) => break,
                    Some(Io::Wrote(Ok(n))) => conn.worker.bytes_out.add(n as u64),
                    _ => {}
                }
            }
        }
        if guard.exceeded(&conn, out.len()) {
            break;
        }
        if read_burst >= BURST || work >= WORK_BURST {
            // A client streaming a large value would otherwise keep the worker for a whole
            // cooperative budget of reads (128 of up to a socket buffer each: hundreds of
            // milliseconds), and every other client on the thread would wait; so would one
            // pipelining thousands of small requests, through their dispatch and replies.
            read_burst = 0;
            work = 0;
            tokio::task::yield_now().await;
        }
        conn.entry
            .set_buffers(rbuf.capacity() + out.footprint() + conn.done_bytes + conn.multi_bytes());
    }
    let _ = stream.shutdown().await;
}

/// Requests dispatched and replies taken in before a task yields to the other tasks of its
/// worker (a client at depth 16 never gets near it).
const WORK_BURST: usize = 512;

/// Bytes a task reads before it yields to the other tasks of its worker.
pub(crate) use hive_upstream::BURST;

/// The next reply, or never while no channel exists yet. A `poll_fn`: `select!` makes this
/// future anew on every turn, and an `async fn`'s state machine cost more to make and poll.
fn recv(
    rx: &mut Option<mailbox::Receiver<Inbox>>,
) -> impl std::future::Future<Output = Option<Inbox>> + '_ {
    std::future::poll_fn(move |cx| match rx {
        Some(r) => r.poll_recv(cx),
        None => std::task::Poll::Pending,
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// The clock's reading for this turn (see `turn_at`).
    pub(crate) fn now(&mut self) -> u64 {
        let clock = &self.clock;
        *self.turn_at.get_or_insert_with(|| clock.raw().max(1))
    }

    /// The reply channel's sender, created on first use.
    fn reply_tx(&mut self) -> ReplyTx {
        if let Some(tx) = &self.tx {
            return tx.clone();
        }
        let (tx, rx) = mailbox::channel();
        self.new_rx = Some(rx);
        self.tx = Some(tx.clone());
        tx
    }

    pub(super) fn dispatch_action(&mut self, req: Request, action: Action) {
        if let Action::Error(e) = &action {
            if e.kind == ErrorKind::Client(ClientReason::NoPerm) {
                self.log_denial(&req);
            }
        }
        if self.subscribed_resp2() {
            return self.dispatch_subscribed(req, action);
        }
        if self.multi.is_some() {
            return self.queue_in_multi(req, action);
        }
        if !self.choose_lane(&req, &action) {
            self.held = Some(req);
            return;
        }
        self.run(req, action);
    }

    /// Runs a classified request outside a transaction.
    fn run(&mut self, req: Request, action: Action) {
        match action {
            Action::Forward(route) => self.forward(req, route),
            Action::Local(cmd) => self.local(cmd, &req),
            Action::ClientReply => self.client_reply(&req),
            Action::Error(e) => self.push_error(&e),
            Action::Info => self.info(req),
            Action::FanOut(kind) => self.fan_out(req, kind),
            Action::Split { kind, step } if self.near.is_some() => {
                if let Some(req) = self.near_read(req, &crate::command::route::Route::Any) {
                    self.split(req, kind, step)
                }
            }
            Action::Split { kind, step } => self.split(req, kind, step),
            Action::Blocking(route) => self.blocking(req, route),
            Action::Wait => self.wait(req),
            Action::Tx(cmd) => self.tx(req, cmd),
            Action::Subscribe {
                family,
                subscribe,
                route,
            } => self.subscribe(req, family, subscribe, route),
            Action::Publish => self.publish(req),
            Action::Scan => self.scan(req),
            Action::Reset => self.reset(),
            Action::EveryNode { masters } => self.every_node(req, masters),
            Action::Pause { on } => self.pause(req, on),
            Action::Monitor => self.monitor(),
            Action::ClientUnblock => self.client_unblock(&req),
            Action::Tracking => self.tracking_cmd(req),
            Action::CrossSlot { plan, why } => self.cross_slot(req, plan, why),
            Action::BlockAcross(plan) => self.block_across(req, plan),
        }
    }

    /// Records a refused request in ACL LOG (the error path only: the check runs again here
    /// to name what was refused).
    fn log_denial(&self, req: &Request) {
        let Some(spec) = hive_common::command::CommandTable::get().lookup(req.arg(0)) else {
            return;
        };
        let spec = match req.get(1).and_then(|s| spec.subcommand(s)) {
            Some(sub) => sub,
            None => spec,
        };
        if let Some(d) = crate::auth::denied(&self.session.user, spec, req) {
            let (reason, object) = d.log_fields();
            self.shared.auth.record(crate::auth::log::Entry {
                reason,
                context: if self.multi.is_some() {
                    "multi"
                } else {
                    "toplevel"
                },
                object,
                username: self.session.user.name.clone(),
                client_info: self.entry.line(),
            });
        }
    }

    fn local(&mut self, cmd: LocalCmd, req: &Request) {
        let mut out = BytesMut::new();
        let ctx = Ctx {
            shared: &self.shared,
            entry: &self.entry,
        };
        match local::answer(cmd, req, &mut self.session, &ctx, &mut out) {
            Ok(after) => {
                self.closing |= after == After::Close;
                self.push_done(out.freeze());
            }
            Err(e) => self.push_error(&e),
        }
    }
}
