//! One client connection: decode a batch, route every request, and write the replies back in
//! request order, following MOVED/ASK and retrying TRYAGAIN/CLUSTERDOWN on the way.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hive_common::command::KeyPositions;
use hive_common::resp::{Request, RequestBuilder, RequestDecoder};
use hive_common::Slot;
use smallvec::{smallvec, SmallVec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::dispatch::{classify, Action};
use crate::error::ProxyError;
use crate::local::{self, After, Session};
use crate::merge::{Merge, MergeKind};
use crate::route::{Redirect, Route, Upstream};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::upstream::{conns, Inbox, Job, ReplyTx, Tag};

/// One request (or one part of a split request) on its way to a backend.
struct Unit {
    req: Request,
    /// Where the unit goes when (re)routed from scratch.
    home: Route,
    route: Route,
    redirects: u8,
    attempts: u8,
    /// When the unit started waiting for a writable master (bounded by `failover_hold_ms`).
    held_since: Option<Instant>,
}

impl Unit {
    fn new(req: Request, route: Route) -> Unit {
        Unit {
            req,
            home: route.clone(),
            route,
            redirects: 0,
            attempts: 0,
            held_since: None,
        }
    }
}

enum Shape {
    Single,
    /// INFO: prepend the proxy's section to the node's reply.
    Info,
    Merge(Box<Merge>),
}

struct Pending {
    units: SmallVec<[Unit; 1]>,
    shape: Shape,
    reply: Option<Bytes>,
}

impl Pending {
    fn done(reply: Bytes) -> Pending {
        Pending {
            units: SmallVec::new(),
            shape: Shape::Single,
            reply: Some(reply),
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    session: Session,
    decoder: RequestDecoder,
    pending: VecDeque<Pending>,
    /// Sequence number of `pending[0]`.
    base: u64,
    /// Where backends send replies. Created with the first forwarded request, so an idle
    /// connection costs no channel (measured: ~2.5 KiB each).
    tx: Option<ReplyTx>,
    /// The receiving end of a channel just created, for the serve loop to pick up.
    new_rx: Option<mpsc::UnboundedReceiver<Inbox>>,
    keys: KeyPositions,
    /// Stop reading; close once every accepted request has its reply (QUIT, protocol error,
    /// shutdown).
    closing: bool,
}

/// Serves one client until it disconnects, quits, or the proxy shuts down.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut rx: Option<mpsc::UnboundedReceiver<Inbox>> = None;
    let cfg = &shared.config.proxy;
    let max_pending = cfg.max_pending_per_client;
    let idle =
        (cfg.client_idle_timeout_s > 0).then(|| Duration::from_secs(cfg.client_idle_timeout_s));
    let mut conn = Conn {
        session: Session {
            id: shared
                .next_client_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: None,
        },
        decoder: RequestDecoder::new(shared.config.limits()),
        shared: shared.clone(),
        pending: VecDeque::new(),
        base: 0,
        tx: None,
        new_rx: None,
        keys: KeyPositions::new(),
        closing: *shutdown.borrow(),
    };
    // Buffers start empty: an idle client holds no buffer pages.
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut last_active = Instant::now();
    loop {
        if conn.closing && conn.pending.is_empty() {
            break;
        }
        let can_read = !conn.closing && conn.pending.len() < max_pending;
        if can_read && rbuf.capacity() - rbuf.len() < 512 {
            // Small first; pipelining clients grow it.
            rbuf.reserve(if rbuf.capacity() == 0 {
                2048
            } else {
                16 * 1024
            });
        }
        let idle_deadline = idle.map(|d| last_active + d);
        tokio::select! {
            biased;
            Some(msg) = recv(&mut rx) => {
                conn.on_inbox(msg);
                while let Some(m) = rx.as_mut().and_then(|r| r.try_recv().ok()) {
                    conn.on_inbox(m);
                }
            }
            r = rd.read_buf(&mut rbuf), if can_read => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => last_active = Instant::now(),
                }
            }
            _ = sleep_until(idle_deadline), if idle_deadline.is_some() && conn.pending.is_empty() => break,
            _ = shutdown.changed(), if !conn.closing => conn.closing = true,
        }
        conn.pump(&mut rbuf, max_pending);
        if let Some(r) = conn.new_rx.take() {
            rx = Some(r);
        }
        conn.flush(&mut wbuf);
        if !wbuf.is_empty() {
            if wr.write_all(&wbuf).await.is_err() {
                break;
            }
            wbuf.clear();
            if wbuf.capacity() > 1 << 20 {
                wbuf = BytesMut::new();
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// The next reply, or never while no channel exists yet.
async fn recv(rx: &mut Option<mpsc::UnboundedReceiver<Inbox>>) -> Option<Inbox> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Decodes and dispatches every complete request the buffer holds, within the pending cap.
    fn pump(&mut self, rbuf: &mut BytesMut, max_pending: usize) {
        let mut decoded = 0;
        while !self.closing && self.pending.len() < max_pending {
            match self.decoder.decode(rbuf) {
                Ok(Some(req)) => {
                    decoded += 1;
                    self.dispatch(req);
                }
                Ok(None) => break,
                Err(e) => {
                    // As Redis: reply with the error, then close once earlier replies are out.
                    self.push_error(&ProxyError::client("ERR", e.to_string()));
                    self.closing = true;
                }
            }
        }
        // One relaxed add per batch keeps INFO current without a per-request atomic.
        Stats::add(&self.shared.stats.commands_processed, decoded);
    }

    /// The reply channel's sender, created on first use.
    fn reply_tx(&mut self) -> ReplyTx {
        if let Some(tx) = &self.tx {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.new_rx = Some(rx);
        self.tx = Some(tx.clone());
        tx
    }

    fn next_seq(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    fn push_error(&mut self, e: &ProxyError) {
        self.pending.push_back(Pending::done(error_frame(e)));
    }

    fn dispatch(&mut self, req: Request) {
        let seq = self.next_seq();
        match classify(&req, &mut self.keys) {
            Action::Forward(route) => {
                self.pending.push_back(Pending {
                    units: smallvec![Unit::new(req, route)],
                    shape: Shape::Single,
                    reply: None,
                });
                self.send(seq, 0);
            }
            Action::Local(cmd) => {
                let mut out = BytesMut::new();
                match local::answer(cmd, &req, &mut self.session, &mut out) {
                    Ok(after) => {
                        self.closing |= after == After::Close;
                        self.pending.push_back(Pending::done(out.freeze()));
                    }
                    Err(e) => self.push_error(&e),
                }
            }
            Action::Error(e) => self.push_error(&e),
            Action::Info => {
                self.pending.push_back(Pending {
                    units: smallvec![Unit::new(req, Route::Any)],
                    shape: Shape::Info,
                    reply: None,
                });
                self.send(seq, 0);
            }
            Action::FanOut(kind) => {
                let n = self.shared.topology.load().map.shards().len();
                if n == 0 {
                    return self.push_error(&no_topology());
                }
                let units = (0..n)
                    .map(|i| Unit::new(req.clone(), Route::Master(i)))
                    .collect();
                self.push_merge(units, Merge::new(kind, n, Vec::new()));
            }
            Action::Split { kind, step } => self.split(req, kind, step),
        }
    }

    fn push_merge(&mut self, units: SmallVec<[Unit; 1]>, merge: Merge) {
        let seq = self.next_seq();
        let n = units.len();
        self.pending.push_back(Pending {
            units,
            shape: Shape::Merge(Box::new(merge)),
            reply: None,
        });
        for part in 0..n {
            self.send(seq, part);
        }
    }

    /// MGET/MSET/DEL/...: one sub-request per slot, merged back in key order.
    fn split(&mut self, req: Request, kind: MergeKind, step: usize) {
        let argc = req.argc();
        if !(argc - 1).is_multiple_of(step) {
            let name = String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
            return self.push_error(&ProxyError::client(
                "ERR",
                format!("wrong number of arguments for '{name}' command"),
            ));
        }
        let mut by_slot: SmallVec<[(Slot, u32); 8]> = (1..argc)
            .step_by(step)
            .map(|i| (Slot::for_key(req.arg(i)), i as u32))
            .collect();
        let first = by_slot[0].0;
        if by_slot.iter().all(|(s, _)| *s == first) {
            let seq = self.next_seq();
            self.pending.push_back(Pending {
                units: smallvec![Unit::new(req, Route::Slot(first))],
                shape: Shape::Single,
                reply: None,
            });
            return self.send(seq, 0);
        }
        by_slot.sort_by_key(|(s, _)| *s);
        let mut units: SmallVec<[Unit; 1]> = SmallVec::new();
        let mut positions = Vec::new();
        for group in by_slot.chunk_by(|a, b| a.0 == b.0) {
            let mut b = RequestBuilder::new(1 + group.len() * step);
            b.arg(req.arg(0));
            let mut pos = SmallVec::new();
            for &(_, i) in group {
                for j in 0..step {
                    b.arg(req.arg(i as usize + j));
                }
                pos.push((i - 1) / step as u32);
            }
            units.push(Unit::new(b.finish(), Route::Slot(group[0].0)));
            positions.push(pos);
        }
        let merge = Merge::new(kind, units.len(), positions);
        self.push_merge(units, merge);
    }

    fn unit(&mut self, tag: Tag) -> Option<&mut Unit> {
        let idx = tag.seq.checked_sub(self.base)? as usize;
        self.pending.get_mut(idx)?.units.get_mut(tag.part as usize)
    }

    /// Sends unit `part` of request `seq` along its current route.
    fn send(&mut self, seq: u64, part: usize) {
        let tag = Tag {
            seq,
            part: part as u32,
        };
        let rr = self.session.id as usize + seq as usize;
        let tx = self.reply_tx();
        let Some(unit) = self.unit(tag) else { return };
        let data = unit.req.raw().clone();
        let route = unit.route.clone();
        let topo = self.shared.topology.load();
        let (backend, asking) = match &route {
            Route::Slot(s) => match topo.map.shard_of(*s) {
                Some(i) => (conns::master(&self.shared, &topo, i), false),
                None => (None, false),
            },
            Route::Master(i) => (conns::master(&self.shared, &topo, *i), false),
            Route::Any => (conns::any_master(&self.shared, &topo, rr), false),
            Route::Node { backend, asking } => (Some(backend.clone()), *asking),
        };
        match backend {
            Some(b) => b.send(Job {
                data,
                asking,
                tag,
                reply: tx,
            }),
            None => {
                let err = match &route {
                    Route::Slot(s) => match topo.map.shard_of(*s) {
                        Some(i) => no_master(topo.shard_name(i)),
                        None => ProxyError::upstream(true, "Hash slot not served")
                            .with_prefix("CLUSTERDOWN"),
                    },
                    Route::Master(i) => no_master(topo.shard_name(*i)),
                    _ => no_master("any"),
                };
                drop(topo);
                self.shared.refresh.notify_one();
                self.hold(tag, error_frame(&err));
            }
        }
    }

    fn on_inbox(&mut self, msg: Inbox) {
        match msg {
            Inbox::Reply { tag, frame } => self.on_reply(tag, frame),
            // Never sent: safe to wait for the shard to come back.
            Inbox::Failed { tag, err } if err.retry => self.hold(tag, error_frame(&err)),
            Inbox::Failed { tag, err } => self.complete(tag, error_frame(&err)),
            Inbox::Retry { tag } => {
                if let Some(u) = self.unit(tag) {
                    u.route = u.home.clone();
                    self.send(tag.seq, tag.part as usize);
                }
            }
        }
    }

    fn on_reply(&mut self, tag: Tag, frame: Bytes) {
        if frame.first() == Some(&b'-') {
            if let Some(up) = Upstream::parse(&frame) {
                return self.upstream_error(tag, up, frame);
            }
        }
        self.complete(tag, frame);
    }

    /// Follows a redirect, or waits out a retryable error; `frame` is the client's answer
    /// once the limits are used up.
    fn upstream_error(&mut self, tag: Tag, up: Upstream, frame: Bytes) {
        let shared = self.shared.clone();
        let Some(unit) = self.unit(tag) else { return };
        let redirect = match up {
            Upstream::Redirect(r) => r,
            Upstream::TryAgain | Upstream::Loading => return self.hold(tag, frame),
            Upstream::ClusterDown | Upstream::ReadOnly => {
                // The map is stale (a failover happened): re-read it while waiting.
                shared.refresh.notify_one();
                return self.hold(tag, frame);
            }
        };
        if unit.redirects >= shared.config.backend.max_redirects {
            return self.complete(tag, frame);
        }
        unit.redirects += 1;
        let (addr, asking) = match redirect {
            Redirect::Moved { addr, .. } => {
                Stats::add(&shared.stats.moved, 1);
                shared.refresh.notify_one();
                (addr, false)
            }
            Redirect::Ask { addr, .. } => {
                Stats::add(&shared.stats.ask, 1);
                (addr, true)
            }
        };
        unit.route = Route::Node {
            backend: conns::backend(&shared, &addr),
            asking,
        };
        self.send(tag.seq, tag.part as usize);
    }

    /// Retries the unit with backoff while its shard has no writable master, for at most
    /// `failover_hold_ms`; then answers `frame`.
    fn hold(&mut self, tag: Tag, frame: Bytes) {
        let cfg = &self.shared.config.backend;
        let limit = Duration::from_millis(cfg.failover_hold_ms);
        let backoff = cfg.retry_backoff_ms;
        let stats = self.shared.stats.clone();
        let tx = self.reply_tx();
        let Some(u) = self.unit(tag) else { return };
        let since = *u.held_since.get_or_insert_with(Instant::now);
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return self.complete(tag, frame);
        }
        u.attempts = u.attempts.saturating_add(1);
        let delay = Duration::from_millis((backoff << (u.attempts - 1).min(5)).min(500)).min(left);
        Stats::add(&stats.retries, 1);
        let mut changed = self.shared.topology_changes();
        tokio::spawn(async move {
            // Retry after the backoff, or as soon as a new topology (a new master) is in.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = changed.changed() => {}
            }
            let _ = tx.send(Inbox::Retry { tag });
        });
    }

    fn complete(&mut self, tag: Tag, frame: Bytes) {
        let Some(idx) = tag.seq.checked_sub(self.base) else {
            return;
        };
        let shared = &self.shared;
        let Some(p) = self.pending.get_mut(idx as usize) else {
            return;
        };
        match &mut p.shape {
            Shape::Single => p.reply = Some(frame),
            Shape::Info => p.reply = Some(prepend_info(shared, frame)),
            Shape::Merge(m) => {
                if let Some(out) = m.add(tag.part as usize, frame) {
                    p.reply = Some(out);
                }
            }
        }
    }

    /// Moves every finished reply at the head of the queue into `out`, in request order.
    fn flush(&mut self, out: &mut BytesMut) {
        let mut errors = 0;
        while self.pending.front().is_some_and(|p| p.reply.is_some()) {
            let Some(Pending { reply: Some(r), .. }) = self.pending.pop_front() else {
                break;
            };
            self.base += 1;
            if r.first() == Some(&b'-') {
                errors += 1;
            }
            out.extend_from_slice(&r);
        }
        Stats::add(&self.shared.stats.error_replies, errors);
    }
}

fn no_topology() -> ProxyError {
    ProxyError::upstream(true, "Hash slot not served").with_prefix("CLUSTERDOWN")
}

fn no_master(shard: &str) -> ProxyError {
    ProxyError::upstream(
        true,
        format!("Hive: shard '{shard}' has no writable master"),
    )
    .with_prefix("TRYAGAIN")
}

fn error_frame(e: &ProxyError) -> Bytes {
    let mut out = BytesMut::new();
    e.write_resp(&mut out);
    out.freeze()
}

fn prepend_info(shared: &Shared, frame: Bytes) -> Bytes {
    let Some(body) = bulk_body(&frame) else {
        return frame;
    };
    let mut text = local::proxy_info(shared).into_bytes();
    text.extend_from_slice(body);
    let mut out = BytesMut::with_capacity(text.len() + 16);
    hive_common::resp::write_bulk(&mut out, &text);
    out.freeze()
}

fn bulk_body(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"$")?;
    let nl = memchr::memchr(b'\n', rest)?;
    rest.get(nl + 1..rest.len().checked_sub(2)?)
}
