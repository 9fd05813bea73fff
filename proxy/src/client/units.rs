//! Request units on their way to backends: routing, MOVED/ASK, waiting out failovers,
//! NOSCRIPT healing, and combining split or fanned-out replies.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hive_common::resp::{Request, RequestBuilder};
use hive_common::Slot;
use smallvec::{smallvec, SmallVec};
use tokio::time::Instant;

use super::stateful::exec_reply;
use super::{error_frame, Conn};
use crate::config::Mode;
use crate::error::ProxyError;
use crate::local;
use crate::merge::{Merge, MergeKind};
use crate::route::{Redirect, Route, Upstream};
use crate::scan::ScanMerge;
use crate::shared::{Shared, NO_MASTER};
use crate::stats::Stats;
use crate::upstream::backend::Backend;
use crate::upstream::{conns, Inbox, Job, Proto, Tag};

/// Tag sequence number of requests the proxy sends for itself (re-subscribing); their replies
/// match no pending entry and are dropped.
pub const INTERNAL: u64 = u64::MAX;

/// Split groups above this are single slots (cluster mode, or a slot no shard owns).
const SLOT_GROUPS: u32 = 1 << 16;

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// One request (or one part of a split request) on its way to a backend.
pub(super) struct Unit {
    pub req: Request,
    /// Where the unit goes when (re)routed from scratch.
    pub home: Route,
    pub route: Route,
    redirects: u8,
    attempts: u8,
    /// When the unit started waiting for a writable master (bounded by `failover_hold_ms`).
    held_since: Option<Instant>,
    /// Runs on one of the client's own connections, chosen by address (blocking commands).
    pub own: bool,
    /// A fixed connection (WATCH, subscriptions): never redirected.
    pub pinned: Option<Arc<Backend>>,
    /// Bytes sent instead of `req` and the reply frames they produce (a transaction).
    pub wire: Option<(Bytes, u32)>,
    /// Sent before the request with its reply dropped (SCRIPT LOAD after NOSCRIPT, or the
    /// replicated write WAIT measures from).
    pub prefix: Option<Bytes>,
    /// ASK is waited out instead of followed (a slot scan must see the whole slot).
    pub no_ask: bool,
}

impl Unit {
    pub fn new(req: Request, route: Route) -> Unit {
        Unit {
            req,
            home: route.clone(),
            route,
            redirects: 0,
            attempts: 0,
            held_since: None,
            own: false,
            pinned: None,
            wire: None,
            prefix: None,
            no_ask: false,
        }
    }
}

pub(super) enum Shape {
    Single,
    /// INFO: prepend the proxy's section to the node's reply.
    Info,
    Merge(Box<Merge>),
    Scan(Box<ScanMerge>),
    /// MULTI ... EXEC sent as one unit: the EXEC reply, unless a redirect aborted it.
    Exec,
}

pub(super) struct Pending {
    pub units: SmallVec<[Unit; 1]>,
    pub shape: Shape,
    pub reply: Option<Bytes>,
    /// A published message: counted against the subscriber output limit.
    pub push: bool,
}

impl Pending {
    pub fn done(reply: Bytes) -> Pending {
        Pending {
            units: SmallVec::new(),
            shape: Shape::Single,
            reply: Some(reply),
            push: false,
        }
    }

    pub fn one(unit: Unit, shape: Shape) -> Pending {
        Pending {
            units: smallvec![unit],
            shape,
            reply: None,
            push: false,
        }
    }
}

impl Conn {
    pub(super) fn forward(&mut self, req: Request, route: Route) {
        if let Route::Any = route {
            self.note_script(&req);
        }
        self.push_unit(Unit::new(req, route), Shape::Single);
    }

    /// Queues one unit and sends it.
    pub(super) fn push_unit(&mut self, unit: Unit, shape: Shape) {
        let seq = self.next_seq();
        self.pending.push_back(Pending::one(unit, shape));
        self.send(seq, 0);
    }

    pub(super) fn info(&mut self, req: Request) {
        self.push_unit(Unit::new(req, Route::Any), Shape::Info);
    }

    pub(super) fn fan_out(&mut self, req: Request, kind: MergeKind) {
        let n = self.shared.topology.load().map.shards().len();
        if n == 0 {
            return self.push_error(&no_topology());
        }
        if req.arg(0).eq_ignore_ascii_case(b"script") && req.arg(1).eq_ignore_ascii_case(b"load") {
            self.shared.scripts.record(req.arg(2));
        }
        let kind = match kind {
            MergeKind::Random(_) => {
                MergeKind::Random(self.session.id as usize + self.base as usize)
            }
            k => k,
        };
        let units = (0..n)
            .map(|i| Unit::new(req.clone(), Route::Master(i)))
            .collect();
        self.push_merge(
            units,
            Shape::Merge(Box::new(Merge::new(kind, n, Vec::new()))),
        );
    }

    pub(super) fn push_merge(&mut self, units: SmallVec<[Unit; 1]>, shape: Shape) {
        let seq = self.next_seq();
        let n = units.len();
        self.pending.push_back(Pending {
            units,
            shape,
            reply: None,
            push: false,
        });
        for part in 0..n {
            self.send(seq, part);
        }
    }

    /// MGET/MSET/DEL/...: one sub-request per slot, merged back in key order.
    pub(super) fn split(&mut self, req: Request, kind: MergeKind, step: usize) {
        let argc = req.argc();
        if !(argc - 1).is_multiple_of(step) {
            let name = String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
            return self.push_error(&ProxyError::client(
                "ERR",
                format!("wrong number of arguments for '{name}' command"),
            ));
        }
        // Redis Cluster refuses a multi-key command across slots, so there a part holds one
        // slot. A standalone master takes any keys: one part per shard (a 10-key MSET over 3
        // masters is 3 parts, not 10).
        let topo =
            (self.shared.config.backend.mode != Mode::Cluster).then(|| self.shared.topology.load());
        let group_of = |s: Slot| -> u32 {
            match topo.as_ref().and_then(|t| t.map.shard_of(s)) {
                Some(shard) => shard as u32,
                None => SLOT_GROUPS + s.index() as u32,
            }
        };
        let mut keys: SmallVec<[(u32, Slot, u32); 8]> = (1..argc)
            .step_by(step)
            .map(|i| {
                let s = Slot::for_key(req.arg(i));
                (group_of(s), s, i as u32)
            })
            .collect();
        let first = keys[0];
        if keys.iter().all(|k| k.0 == first.0) {
            return self.push_unit(Unit::new(req, Route::Slot(first.1)), Shape::Single);
        }
        // Stable: a part keeps its keys in request order.
        keys.sort_by_key(|k| k.0);
        // Sized up front: regrowing these was a visible share of malloc under split MSETs.
        let parts = keys.chunk_by(|a, b| a.0 == b.0).count();
        let mut units: SmallVec<[Unit; 1]> = SmallVec::with_capacity(parts);
        let mut positions = Vec::with_capacity(parts);
        for group in keys.chunk_by(|a, b| a.0 == b.0) {
            let payload: usize = group
                .iter()
                .map(|&(_, _, i)| {
                    (0..step)
                        .map(|j| req.arg(i as usize + j).len())
                        .sum::<usize>()
                })
                .sum();
            let mut b =
                RequestBuilder::with_payload(1 + group.len() * step, req.arg(0).len() + payload);
            b.arg(req.arg(0));
            let mut pos = SmallVec::new();
            for &(_, _, i) in group {
                for j in 0..step {
                    b.arg(req.arg(i as usize + j));
                }
                pos.push((i - 1) / step as u32);
            }
            units.push(Unit::new(b.finish(), Route::Slot(group[0].1)));
            positions.push(pos);
        }
        let merge = Merge::new(kind, units.len(), positions);
        self.push_merge(units, Shape::Merge(Box::new(merge)));
    }

    /// EVAL bodies are remembered so an EVALSHA of them can be healed later. Hashing costs
    /// about a microsecond per EVAL, which is small beside the script run itself.
    fn note_script(&self, req: &Request) {
        let n = req.arg(0);
        if n.eq_ignore_ascii_case(b"eval") || n.eq_ignore_ascii_case(b"eval_ro") {
            self.shared.scripts.record(req.arg(1));
        }
    }

    pub(super) fn unit(&mut self, tag: Tag) -> Option<&mut Unit> {
        let idx = tag.seq.checked_sub(self.base)? as usize;
        self.pending.get_mut(idx)?.units.get_mut(tag.part as usize)
    }

    /// Sends unit `part` of request `seq` along its current route.
    pub(super) fn send(&mut self, seq: u64, part: usize) {
        let tag = Tag {
            seq,
            part: part as u32,
        };
        let rr = self.session.id as usize + seq as usize;
        let proto = self.session.proto;
        let reply = self.reply_tx();
        let Some(unit) = self.unit(tag) else { return };
        let (data, frames) = match &unit.wire {
            Some((w, n)) => (w.clone(), *n),
            None => (unit.req.raw().clone(), 1),
        };
        let route = unit.route.clone();
        let (own, pinned) = (unit.own, unit.pinned.clone());
        let mut prefix = unit.prefix.clone();
        // Field borrows, not a clone of the `Arc`: this runs for every request.
        let shared = &self.shared;
        let topo = shared.topology.load();
        let shard = match &route {
            Route::Slot(s) => topo.map.shard_of(*s),
            Route::Master(i) => Some(*i),
            _ => None,
        };
        let backend = if let Some(p) = pinned {
            Some(p)
        } else if own {
            let n = topo.map.shards().len();
            let addr = match &route {
                Route::Node { backend, .. } => Some(backend.addr.to_string()),
                Route::Any => (0..n)
                    .map(|k| (rr + k) % n)
                    .find(|&i| topo.has_master(i))
                    .map(|i| topo.map.shards()[i].master.clone()),
                _ => shard
                    .map(|i| topo.map.shards()[i].master.clone())
                    .filter(|m| m != NO_MASTER),
            };
            addr.map(|a| own_conn(&mut self.own, shared, proto, &a))
        } else {
            match &route {
                Route::Slot(_) | Route::Master(_) => {
                    shard.and_then(|i| conns::master(shared, &topo, i, proto))
                }
                Route::Any => conns::any_master(shared, &topo, rr, proto),
                Route::Node { backend, .. } => Some(backend.clone()),
            }
        };
        if let Route::Node { asking: true, .. } = route {
            prefix = Some(Bytes::from_static(ASKING));
        }
        match backend {
            Some(b) => b.send(Job {
                data,
                prefix,
                frames,
                tag,
                reply,
            }),
            None => {
                let err = match (&route, shard) {
                    (Route::Slot(_), None) => no_topology(),
                    (_, Some(i)) => no_master(topo.shard_name(i)),
                    _ => no_master("any"),
                };
                drop(topo);
                shared.refresh.notify_one();
                self.hold(tag, error_frame(&err));
            }
        }
    }

    pub(super) fn on_inbox(&mut self, msg: Inbox) {
        match msg {
            Inbox::Reply { tag, frame } => self.on_reply(tag, frame),
            Inbox::Failed { tag, .. } if tag.seq == INTERNAL => self.schedule_resubscribe(),
            // Never sent: safe to wait for the shard to come back.
            Inbox::Failed { tag, err } if err.retry => self.hold(tag, error_frame(&err)),
            Inbox::Failed { tag, err } => self.complete(tag, error_frame(&err)),
            Inbox::Retry { tag } => {
                if let Some(u) = self.unit(tag) {
                    u.route = u.home.clone();
                    self.send(tag.seq, tag.part as usize);
                }
            }
            Inbox::Push { frame } => {
                let mut p = Pending::done(frame);
                p.push = true;
                self.pending.push_back(p);
            }
            Inbox::Lost => self.schedule_resubscribe(),
            Inbox::Resubscribe => self.resubscribe(),
        }
    }

    fn on_reply(&mut self, tag: Tag, frame: Bytes) {
        if frame.first() == Some(&b'-') {
            if let Some(up) = Upstream::parse(&frame) {
                return self.upstream_error(tag, up, frame);
            }
            if frame.starts_with(b"-NOSCRIPT") && self.heal_script(tag) {
                return;
            }
        }
        self.complete(tag, frame);
    }

    /// Reloads a script the node lost and runs the EVALSHA again (once).
    fn heal_script(&mut self, tag: Tag) -> bool {
        let scripts = self.shared.clone();
        let Some(u) = self.unit(tag) else {
            return false;
        };
        let name = u.req.arg(0);
        let evalsha =
            name.eq_ignore_ascii_case(b"evalsha") || name.eq_ignore_ascii_case(b"evalsha_ro");
        if !evalsha || u.prefix.is_some() || u.req.argc() < 2 {
            return false;
        }
        let Some(load) = scripts.scripts.load_request(u.req.arg(1)) else {
            return false;
        };
        u.prefix = Some(load);
        self.send(tag.seq, tag.part as usize);
        true
    }

    /// Follows a redirect, or waits out a retryable error; `frame` is the client's answer
    /// once the limits are used up.
    fn upstream_error(&mut self, tag: Tag, up: Upstream, frame: Bytes) {
        let shared = self.shared.clone();
        let proto = self.session.proto;
        let Some(unit) = self.unit(tag) else { return };
        if unit.pinned.is_some() {
            return self.complete(tag, frame);
        }
        let redirect = match up {
            Upstream::Redirect(Redirect::Ask { .. }) if unit.no_ask => {
                return self.hold(tag, frame)
            }
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
            backend: conns::backend(&shared, &addr, proto),
            asking,
        };
        self.send(tag.seq, tag.part as usize);
    }

    /// Retries the unit with backoff while its shard has no writable master, for at most
    /// `failover_hold_ms`; then answers `frame`.
    pub(super) fn hold(&mut self, tag: Tag, frame: Bytes) {
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

    pub(super) fn complete(&mut self, tag: Tag, frame: Bytes) {
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
            Shape::Exec => p.reply = Some(exec_reply(shared, frame)),
            Shape::Merge(m) => {
                if let Some(out) = m.add(tag.part as usize, frame) {
                    p.reply = Some(out);
                }
            }
            Shape::Scan(m) => {
                if let Some(out) = m.add(tag.part as usize, frame) {
                    p.reply = Some(out);
                }
            }
        }
    }
}

/// A connection of the client's own to `addr`, reused while it lives.
fn own_conn(
    own: &mut Vec<Arc<Backend>>,
    shared: &Shared,
    proto: Proto,
    addr: &str,
) -> Arc<Backend> {
    if let Some(b) = own.iter().find(|b| &*b.addr == addr) {
        return b.clone();
    }
    let b = shared.connector.dedicated(addr, proto, None);
    own.push(b.clone());
    b
}

pub(super) fn no_topology() -> ProxyError {
    ProxyError::upstream(true, "Hash slot not served").with_prefix("CLUSTERDOWN")
}

fn no_master(shard: &str) -> ProxyError {
    ProxyError::upstream(
        true,
        format!("Hive: shard '{shard}' has no writable master"),
    )
    .with_prefix("TRYAGAIN")
}

fn prepend_info(shared: &Shared, frame: Bytes) -> Bytes {
    let Some((body, verbatim)) = bulk_body(&frame) else {
        return frame;
    };
    let mut text = local::proxy_info(shared).into_bytes();
    text.extend_from_slice(body);
    let mut out = BytesMut::with_capacity(text.len() + 16);
    hive_common::resp::write_verbatim(&mut out, &text, verbatim);
    out.freeze()
}

/// The text of a bulk or verbatim string reply, and whether it was verbatim.
fn bulk_body(frame: &[u8]) -> Option<(&[u8], bool)> {
    let verbatim = frame.first() == Some(&b'=');
    let rest = frame
        .strip_prefix(b"$")
        .or_else(|| frame.strip_prefix(b"="))?;
    let nl = memchr::memchr(b'\n', rest)?;
    let body = rest.get(nl + 1..rest.len().checked_sub(2)?)?;
    Some(if verbatim {
        (body.get(4..)?, true)
    } else {
        (body, false)
    })
}
