//! The client's replies in request order: each request is a `Pending` entry holding the units
//! sent for it and, once they are answered, its reply; `flush` writes the finished head of the
//! queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use hive_common::command::CommandTable;
use hive_common::resp::Request;
use smallvec::{smallvec, SmallVec};
use tokio::time::Instant;

use super::outbox::Outbox;
use super::Conn;
use crate::client::modes::transaction::exec_reply;
use crate::client::send::forward::prepend_info;
use crate::command::reply::every_node::NodeReplies;
use crate::command::reply::merge::Merge;
use crate::command::route::Route;
use crate::error::ProxyError;
use crate::metrics::worker::error_code;
use crate::metrics::worker::WorkerStats;
use crate::metrics::Stats;
use crate::state::registry::ClientEntry;
use crate::state::slowlog::trim_args;
use hive_upstream::conn::backend::Backend;
use hive_upstream::Tag;

/// One request (or one part of a split request) on its way to a backend.
pub(super) struct Unit {
    pub req: Request,
    /// Where the unit goes when (re)routed from scratch.
    pub home: Route,
    pub route: Route,
    pub redirects: u8,
    pub attempts: u8,
    /// Runs on one of the client's own connections, chosen by address (blocking commands).
    pub own: bool,
    /// ASK is waited out instead of followed (a slot scan must see the whole slot).
    pub no_ask: bool,
    /// Goes over the client's own connection for large traffic (`large.rs`).
    pub large: bool,
    /// Replicas must confirm it before it is answered (`write_ack = "replica"`).
    pub ack: bool,
    /// The replica a read was sent to, so a failure sets it aside and retries elsewhere.
    pub replica: Option<Arc<str>>,
    /// What few units carry, boxed: every request's unit is built, moved into its queue entry
    /// and dropped, and these fields made it 256 bytes instead of 168 (issue 27).
    pub extra: Option<Box<Extra>>,
}

/// The parts of a `Unit` that transactions, subscriptions, fills, scripts and waits use.
#[derive(Default)]
pub(super) struct Extra {
    /// When the unit started waiting for a writable master (bounded by `failover_hold_ms`).
    pub held_since: Option<Instant>,
    /// A fixed connection (WATCH, subscriptions): never redirected.
    pub pinned: Option<Arc<Backend>>,
    /// Bytes sent instead of `req` and the reply frames they produce (a transaction).
    pub wire: Option<(Bytes, u32)>,
    /// Sent before the request with its reply dropped (SCRIPT LOAD after NOSCRIPT, or a
    /// blocking command's heartbeat).
    pub prefix: Option<Bytes>,
}

impl Unit {
    pub fn new(req: Request, route: Route) -> Unit {
        Unit {
            req,
            home: route.clone(),
            route,
            redirects: 0,
            attempts: 0,
            own: false,
            no_ask: false,
            large: false,
            ack: false,
            replica: None,
            extra: None,
        }
    }

    /// The rare parts, made on first use.
    pub fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn held_since(&self) -> Option<Instant> {
        self.extra.as_ref()?.held_since
    }

    pub fn pinned(&self) -> Option<&Arc<Backend>> {
        self.extra.as_ref()?.pinned.as_ref()
    }

    pub fn wire(&self) -> Option<&(Bytes, u32)> {
        self.extra.as_ref()?.wire.as_ref()
    }

    pub fn prefix(&self) -> Option<&Bytes> {
        self.extra.as_ref()?.prefix.as_ref()
    }
}

/// How the units' replies become the client's reply.
pub(super) enum Shape {
    Single,
    /// INFO: prepend the proxy's section to the node's reply (with the command count as of
    /// the request), and `# Hotkeys` when asked for.
    Info(u64, bool),
    Merge(Box<Merge>),
    /// MULTI ... EXEC sent as one unit: the EXEC reply, unless a redirect aborted it.
    Exec,
    /// One reply per node, `+OK` only when every node said it.
    Nodes(Box<NodeReplies>),
    /// PUBLISH: the nodes' count (merged when several), corrected by `add` to count every
    /// subscriber reached through Hive once.
    Count {
        merge: Option<Box<Merge>>,
        add: i64,
    },
    /// SSUBSCRIBE/SUNSUBSCRIBE: the nodes count per connection, the client wants its own
    /// total, so their confirmations (merged when several) are replaced by `reply`, unless a
    /// node answered an error.
    Confirm {
        merge: Option<Box<Merge>>,
        reply: Bytes,
    },
    /// A near-cache fill: the read's reply then PTTL's; the cache keeps what it learns, the
    /// client gets the read's reply.
    Fill(Box<crate::cache::Fill>),
}

pub(super) struct Pending {
    pub units: SmallVec<[Unit; 1]>,
    pub shape: Shape,
    pub reply: Option<Bytes>,
    /// A published message: counted against the subscriber output limit.
    pub push: bool,
    /// The command's id (`NO_CMD`: not a request) and when its batch was decoded, for the
    /// per-command counters and the slow log.
    pub cmd: u16,
    /// `metrics::worker::clock()`'s raw reading; 0 when not timed.
    pub at: u64,
    /// CLIENT REPLY OFF or SKIP: the reply is dropped instead of written.
    pub silent: bool,
    /// A read or a write that never blocks: a node answers it within a round trip, so the
    /// replies of its batch before it may wait for it (`flush`).
    pub quick: bool,
    /// The read turn that decoded it (`Conn::batch`; 0: none).
    pub batch: u32,
}

/// `Pending::cmd` of entries that answer no counted request.
pub(super) const NO_CMD: u16 = u16::MAX;

impl Pending {
    pub fn done(reply: Bytes) -> Pending {
        Pending {
            reply: Some(reply),
            ..Pending::waiting(SmallVec::new(), Shape::Single)
        }
    }

    /// An entry whose reply `units` will make, as `shape` says.
    pub fn waiting(units: SmallVec<[Unit; 1]>, shape: Shape) -> Pending {
        Pending {
            units,
            shape,
            reply: None,
            push: false,
            cmd: NO_CMD,
            at: 0,
            silent: false,
            quick: false,
            batch: 0,
        }
    }
}

impl Conn {
    pub(super) fn next_seq(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    pub(super) fn push_error(&mut self, e: &ProxyError) {
        self.pending.push_back(Pending::done(e.frame()));
    }

    pub(super) fn push_done(&mut self, reply: Bytes) {
        self.pending.push_back(Pending::done(reply));
    }

    /// Queues one unit and sends it.
    pub(super) fn push_unit(&mut self, mut unit: Unit, shape: Shape) {
        let seq = self.next_seq();
        unit.ack = self.acks.now;
        self.pending
            .push_back(Pending::waiting(smallvec![unit], shape));
        self.send(seq, 0);
    }

    /// Queues one unit that waits for a near-cache fill on its way, unsent: the fill's
    /// reply completes it, or `on_joined` sends it after all.
    pub(super) fn push_waiting(&mut self, mut unit: Unit) {
        unit.ack = self.acks.now;
        self.pending
            .push_back(Pending::waiting(smallvec![unit], Shape::Single));
    }

    /// Queues several units answered as one reply and sends them all.
    pub(super) fn push_merge(&mut self, mut units: SmallVec<[Unit; 1]>, shape: Shape) {
        let seq = self.next_seq();
        let n = units.len();
        if self.acks.now {
            for u in &mut units {
                u.ack = true;
            }
        }
        self.pending.push_back(Pending::waiting(units, shape));
        for part in 0..n {
            self.send(seq, part);
        }
    }

    pub(super) fn unit(&mut self, tag: Tag) -> Option<&mut Unit> {
        let idx = tag.seq.checked_sub(self.base)? as usize;
        self.pending.get_mut(idx)?.units.get_mut(tag.part as usize)
    }

    /// Records unit `tag`'s final answer; the entry's reply is set once every unit has one.
    pub(super) fn complete(&mut self, tag: Tag, frame: Bytes) {
        let Some(idx) = tag.seq.checked_sub(self.base) else {
            return;
        };
        let shared = &self.shared;
        let Some(p) = self.pending.get_mut(idx as usize) else {
            return;
        };
        if let Some(u) = p.units.get(tag.part as usize) {
            if let Some(since) = u.held_since() {
                if frame.first() != Some(&b'-') {
                    held_succeeded(shared, &u.home, since);
                }
            }
        }
        match &mut p.shape {
            Shape::Single => p.reply = Some(frame),
            Shape::Info(n, hot) => p.reply = Some(prepend_info(shared, frame, *n, *hot)),
            Shape::Exec => p.reply = Some(exec_reply(shared, frame)),
            Shape::Fill(f) => {
                p.reply = Some(match &shared.cache {
                    Some(c) => c.fill(f, &frame),
                    None => frame,
                })
            }
            Shape::Merge(m) => {
                if let Some(out) = m.add(tag.part as usize, frame) {
                    p.reply = Some(out);
                }
            }
            Shape::Nodes(m) => {
                if let Some(out) = m.add(tag.part as usize, frame) {
                    p.reply = Some(out);
                }
            }
            Shape::Count { merge, add } => {
                let out = match merge {
                    Some(m) => m.add(tag.part as usize, frame),
                    None => Some(frame),
                };
                p.reply = out.map(|f| corrected(f, *add));
            }
            Shape::Confirm { merge, reply } => {
                let out = match merge {
                    Some(m) => m.add(tag.part as usize, frame),
                    None => Some(frame),
                };
                p.reply = out.map(|f| {
                    if f.first() == Some(&b'-') {
                        f
                    } else {
                        reply.clone()
                    }
                });
            }
        }
        if let Some(r) = &p.reply {
            self.done_bytes += r.len();
            self.large.saw_reply(r.len());
            if p.units.first().is_some_and(|u| u.own) {
                let mut b = self.entry.blocked.lock().unwrap_or_else(|p| p.into_inner());
                *b = crate::state::registry::Blocked::No;
            }
        }
    }

    /// Moves every finished reply at the head of the queue into `out`, in request order, and
    /// counts each against its command (the turn's one clock reading, none per request). The
    /// entries are read where they are, in one pass, and dropped there: moving each out of the
    /// queue was two `memcpy` calls per request (callgrind, issue 27).
    pub(super) fn flush(&mut self, out: &mut Outbox) {
        let ready = self.flushable();
        let (clock, turn_at) = (&self.clock, &mut self.turn_at);
        let mut n = 0;
        let mut errors = 0;
        let mut pushed = 0;
        for p in self.pending.iter() {
            let Some(r) = &p.reply else { break };
            if n == ready {
                break;
            }
            n += 1;
            if !p.units.is_empty() {
                self.done_bytes -= r.len();
            }
            if p.push {
                pushed += r.len();
            } else if r.first() == Some(&b'-') {
                errors += 1;
                self.worker.errors[error_code(r)].add(1);
            }
            if !p.silent {
                out.push(r);
            }
            // Requests a backend answered: a near-cache hit is sampled where it is answered.
            if p.cmd != NO_CMD && !p.units.is_empty() && self.sample.tick() {
                sample(&self.worker, p, r.len(), self.sample.every());
            }
            if p.at != 0 && p.cmd != NO_CMD {
                let now = *turn_at.get_or_insert_with(|| clock.raw().max(1));
                let us = clock.delta_as_nanos(p.at, now) / 1000;
                self.worker.record(p.cmd, us);
                if self.slow_us.is_some_and(|t| us >= t) {
                    log_slow(&self.worker, &self.entry, &self.shared, p, us);
                }
            }
        }
        if self.near.is_some() {
            self.near_replies(self.base + n as u64);
        }
        if n > 0 {
            self.pending.drain(..n);
            self.base += n as u64;
        }
        if pushed > 0 {
            if let Some(s) = &self.subs {
                s.sink.queued.fetch_sub(pushed, Ordering::Relaxed);
            }
        }
        Stats::add(&self.shared.stats.error_replies, errors);
        self.note_acked();
    }
}

/// Replies ready at the head of the queue wait for the other requests of their batch (those
/// decoded in the same read) when every one of those is quick and few: the client gets the
/// batch in one write, as Redis sends a read's worth of replies, instead of the ready part now
/// and the rest a round trip later (a pipeline of near-cache hits and misses, or of keys on
/// several shards, cost the client and the proxy two writes and two wake-ups per batch; issue
/// 29). Replies of earlier batches never wait, so a client that keeps requests in flight all
/// the time gets each batch's replies when that batch is done. A blocking command, a request
/// waiting out a failover, a batch of more than 64 waiting requests, or 64 KiB of ready
/// replies lets them go at once; the look is bounded, so it costs a few entries per flush.
const HOLD_BACK_MAX_BEHIND: usize = 64;
const HOLD_BACK_MAX_READY: usize = 1024;
const HOLD_BACK_MAX_BYTES: usize = 64 * 1024;

impl Conn {
    /// How many of the ready replies at the head may go now.
    fn flushable(&self) -> usize {
        let mut bytes = 0;
        for (i, p) in self.pending.iter().enumerate() {
            if let Some(r) = &p.reply {
                bytes += r.len();
                if bytes > HOLD_BACK_MAX_BYTES || i >= HOLD_BACK_MAX_READY {
                    return usize::MAX;
                }
                continue;
            }
            // The first unanswered request: its batch's replies wait for it, if it and the
            // rest of its batch are quick.
            let batch = p.batch;
            if i == 0 || batch == 0 {
                return usize::MAX;
            }
            let rest = self.pending.range(i..).take_while(|q| q.batch == batch);
            for (n, q) in rest.enumerate() {
                let slow = q.reply.is_none()
                    && (!q.quick || q.units.iter().any(|u| u.own || u.held_since().is_some()));
                if slow || n >= HOLD_BACK_MAX_BEHIND {
                    return usize::MAX;
                }
            }
            return self
                .pending
                .range(..i)
                .position(|q| q.batch == batch)
                .unwrap_or(i);
        }
        usize::MAX
    }
}

/// Records a sampled request's first key and reply size; a request without one (no key, or
/// answered by the proxy itself) is skipped. Runs for 1 request in `hotkeys_sample_every`.
fn sample(worker: &WorkerStats, p: &Pending, bytes: usize, every: u32) {
    let Some(u) = p.units.first() else { return };
    let req = &u.req;
    let Some(spec) = hive_common::command::CommandTable::get().lookup(req.arg(0)) else {
        return;
    };
    if spec.first_key > 0 && (spec.first_key as usize) < req.argc() {
        worker
            .hotkeys
            .sample(req.arg(spec.first_key as usize), bytes, every);
    }
}

/// Adds a slow request to SLOWLOG, with the arguments its units carried (a split command's
/// keys shard by shard).
fn log_slow(
    worker: &WorkerStats,
    entry: &ClientEntry,
    shared: &crate::state::Shared,
    p: &Pending,
    us: u64,
) {
    worker.slow.add(1);
    let mut units = p.units.iter();
    let args = match units.next() {
        Some(first) => {
            let rest = units.flat_map(|u| u.req.args().skip(1));
            let all: Vec<&[u8]> = first.req.args().chain(rest).collect();
            trim_args(all.into_iter())
        }
        None => {
            let name = CommandTable::get().name_of(p.cmd).unwrap_or("?");
            vec![Bytes::copy_from_slice(name.as_bytes())]
        }
    };
    let name = entry.info.lock().ok().and_then(|i| i.name.clone());
    shared
        .slowlog
        .push(us, args, entry.peer.to_string(), name.unwrap_or_default());
}

/// An integer reply plus `add` (never below 0); other replies (errors) as they are.
fn corrected(frame: Bytes, add: i64) -> Bytes {
    let n = frame
        .strip_prefix(b":")
        .and_then(|r| r.strip_suffix(b"\r\n"))
        .and_then(hive_common::resp::parse_i64);
    match n {
        Some(n) => Bytes::from(format!(":{}\r\n", (n + add).max(0))),
        None => frame,
    }
}

/// A request that waited for a master got its answer: count how long it waited, and end the
/// shard's failover clock.
fn held_succeeded(shared: &crate::state::Shared, home: &Route, since: Instant) {
    shared.stats.held.observe(since.elapsed());
    if let Route::Slot(s) = home {
        if let Some(i) = shared.plane.topology.load().map.shard_of(*s) {
            shared.plane.topology.clock.recovered(i);
        }
    }
}
