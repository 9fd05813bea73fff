//! Connection state beyond single requests: MULTI/EXEC/WATCH, blocking commands and WAIT on
//! the client's own connections, subscriptions (re-established after a failover), and RESET.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hive_common::resp::{ReplyScanner, Request};
use hive_common::Slot;
use smallvec::SmallVec;

use super::units::{Shape, Unit, INTERNAL};
use super::Conn;
use crate::config::Mode;
use crate::dispatch::{crossslot, Action, TxCmd};
use crate::error::ProxyError;
use crate::merge::{Merge, MergeKind};
use crate::pubsub::{subscribed_pong, Family, Subscriptions};
use crate::route::{Route, Upstream};
use crate::session::Session;
use crate::shared::{Shared, NO_MASTER};
use crate::upstream::backend::{Backend, PushSink};
use crate::upstream::{Inbox, Job, Proto, Tag};

/// A transaction being queued by the proxy; it is sent as one unit at EXEC.
#[derive(Default)]
pub(super) struct Multi {
    queued: Vec<Request>,
    slot: Option<Slot>,
    dirty: bool,
}

/// WATCH pins the client to a connection of its own on the node that owns the watched slot.
pub(super) struct Watch {
    slot: Slot,
    conn: Arc<Backend>,
}

pub(super) struct Subscriber {
    subs: Subscriptions,
    /// Channels and patterns live on one master: its shard and the connection.
    home: Option<(usize, Arc<Backend>)>,
    /// Shard channels live on the master owning their slot.
    shard_conns: Vec<Arc<Backend>>,
    pub sink: PushSink,
    resub_scheduled: bool,
}

/// The replicated write before WAIT: it moves the connection's replication offset past every
/// write the client made before, so WAIT measures them (needs hive-module; without it the
/// error is dropped and WAIT counts the replicas that are connected).
const HEARTBEAT: &[u8] = b"*1\r\n$14\r\nHIVE.HEARTBEAT\r\n";

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::client("ERR", m)
}

impl Conn {
    pub(super) fn subscribed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.subs.active())
    }

    /// RESP2 clients in subscribed state may only (un)subscribe, PING, QUIT and RESET.
    pub(super) fn subscribed_resp2(&self) -> bool {
        self.session.proto == Proto::Resp2 && self.subscribed()
    }

    pub(super) fn dispatch_subscribed(&mut self, req: Request, action: Action) {
        match action {
            Action::Subscribe { .. } | Action::Reset | Action::Error(_) => self.run(req, action),
            Action::Local("quit") => self.run(req, action),
            Action::Local("ping") => self.push_done(subscribed_pong(req.get(1))),
            _ => {
                let name = String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
                self.push_error(&err(format!(
                    "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                )));
            }
        }
    }

    /// Whether two slots are served together: the same slot in a cluster (which is what Redis
    /// Cluster requires), the same shard in the other modes (which never move slots).
    fn same_node(&self, a: Slot, b: Slot) -> bool {
        if self.shared.config.backend.mode == Mode::Cluster {
            return a == b;
        }
        let topo = self.shared.topology.load();
        topo.map.shard_of(a) == topo.map.shard_of(b)
    }

    pub(super) fn tx(&mut self, req: Request, cmd: TxCmd) {
        match cmd {
            TxCmd::Multi => {
                self.multi = Some(Box::default());
                self.entry.update(|c| c.multi = true);
                self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            TxCmd::Exec => self.push_error(&err("EXEC without MULTI")),
            TxCmd::Discard => self.push_error(&err("DISCARD without MULTI")),
            TxCmd::Unwatch => {
                self.watch = None;
                self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            TxCmd::Watch(route) => self.watch(req, route),
        }
    }

    fn watch(&mut self, req: Request, route: Route) {
        let Route::Slot(slot) = route else {
            return self.push_error(&err("wrong number of arguments for 'watch' command"));
        };
        let conn = match &self.watch {
            Some(w) if !self.same_node(w.slot, slot) => return self.push_error(&crossslot()),
            Some(w) => w.conn.clone(),
            None => match self.master_addr(slot) {
                Some(addr) => self
                    .shared
                    .connector
                    .dedicated(&addr, self.session.proto, None),
                None => return self.push_error(&no_master_for(slot)),
            },
        };
        self.watch = Some(Watch {
            slot,
            conn: conn.clone(),
        });
        let mut unit = Unit::new(req, route);
        unit.pinned = Some(conn);
        self.push_unit(unit, Shape::Single);
    }

    fn master_addr(&self, slot: Slot) -> Option<String> {
        let topo = self.shared.topology.load();
        let i = topo.map.shard_of(slot)?;
        let m = &topo.map.shards()[i].master;
        (m != NO_MASTER).then(|| m.clone())
    }

    pub(super) fn queue_in_multi(&mut self, req: Request, action: Action) {
        match action {
            Action::Tx(TxCmd::Exec) => return self.exec(),
            Action::Tx(TxCmd::Discard) => {
                self.end_multi();
                return self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            Action::Tx(TxCmd::Multi) => {
                return self.push_error(&err("MULTI calls can not be nested"))
            }
            Action::Tx(TxCmd::Watch(_)) => {
                return self.push_error(&err("WATCH inside MULTI is not allowed"))
            }
            Action::Reset | Action::Local("quit") => return self.run(req, action),
            _ => {}
        }
        match self.tx_slot(&req, action) {
            Ok(slot) => {
                let pinned = self.watch.as_ref().map(|w| w.slot);
                let Some(m) = self.multi.as_mut() else { return };
                if let Some(s) = slot {
                    let other = m.slot.or(pinned);
                    if let Some(o) = other {
                        if !self.same_node(o, s) {
                            self.mark_dirty();
                            return self.push_error(&crossslot());
                        }
                    }
                    if let Some(m) = self.multi.as_mut() {
                        m.slot.get_or_insert(s);
                    }
                }
                if let Some(m) = self.multi.as_mut() {
                    m.queued.push(req);
                }
                self.push_done(Bytes::from_static(b"+QUEUED\r\n"));
            }
            Err(e) => {
                self.mark_dirty();
                self.push_error(&e);
            }
        }
    }

    fn mark_dirty(&mut self) {
        if let Some(m) = self.multi.as_mut() {
            m.dirty = true;
        }
    }

    fn end_multi(&mut self) {
        self.multi = None;
        self.watch = None;
        self.entry.update(|c| c.multi = false);
    }

    /// The slot a queued command needs, or why it cannot be part of a transaction.
    fn tx_slot(&self, req: &Request, action: Action) -> Result<Option<Slot>, ProxyError> {
        let name = || String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
        match action {
            Action::Error(e) => Err(e),
            Action::Forward(Route::Slot(s)) | Action::Blocking(Route::Slot(s)) => Ok(Some(s)),
            Action::Forward(_) | Action::Blocking(_) | Action::Local("ping" | "echo") => Ok(None),
            Action::Publish if self.shared.config.backend.mode == Mode::Cluster => Ok(None),
            Action::Split { step, .. } => {
                let slot = Slot::for_key(req.arg(1));
                let same = (1..req.argc())
                    .step_by(step)
                    .all(|i| Slot::for_key(req.arg(i)) == slot);
                if same {
                    Ok(Some(slot))
                } else {
                    Err(crossslot())
                }
            }
            _ => Err(err(format!(
                "Hive: '{}' cannot be part of a transaction (it is answered by the proxy or runs on every master)",
                name()
            ))),
        }
    }

    /// Sends MULTI, the queued commands and EXEC as one unit, so they reach one node back to
    /// back even on a shared connection.
    fn exec(&mut self) {
        let Some(m) = self.multi.take() else { return };
        let watch = self.watch.take();
        self.entry.update(|c| c.multi = false);
        if m.dirty {
            return self.push_error(&ProxyError::client(
                "EXECABORT",
                "Transaction discarded because of previous errors.",
            ));
        }
        let mut wire = BytesMut::new();
        wire.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        for r in &m.queued {
            wire.extend_from_slice(r.raw());
        }
        wire.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        let route = m
            .slot
            .or(watch.as_ref().map(|w| w.slot))
            .map_or(Route::Any, Route::Slot);
        let mut unit = Unit::new(Request::from_args(&["EXEC"]), route);
        unit.wire = Some((wire.freeze(), m.queued.len() as u32 + 2));
        unit.pinned = watch.map(|w| w.conn);
        self.push_unit(unit, Shape::Exec);
    }

    pub(super) fn blocking(&mut self, req: Request, route: Route) {
        let mut unit = Unit::new(req, route);
        unit.own = true;
        self.push_unit(unit, Shape::Single);
    }

    /// WAIT on every master, each on the client's own connection after a replicated write;
    /// the answer is the smallest count, the one that holds for every shard.
    pub(super) fn wait(&mut self, req: Request) {
        let n = self.shared.topology.load().map.shards().len();
        let units: SmallVec<[Unit; 1]> = (0..n)
            .map(|i| {
                let mut u = Unit::new(req.clone(), Route::Master(i));
                u.own = true;
                u.prefix = Some(Bytes::from_static(HEARTBEAT));
                u
            })
            .collect();
        let merge = Merge::new(MergeKind::Min, n, Vec::new());
        self.push_merge(units, Shape::Merge(Box::new(merge)));
    }

    pub(super) fn publish(&mut self, req: Request) {
        if self.shared.config.backend.mode == Mode::Cluster {
            // The cluster bus delivers it to subscribers on every node. One node per channel
            // keeps a publisher's messages in order.
            let slot = Slot::for_key(req.arg(1));
            self.forward(req, Route::Slot(slot));
        } else {
            self.fan_out(req, MergeKind::Sum);
        }
    }

    pub(super) fn reset(&mut self) {
        self.multi = None;
        self.watch = None;
        self.subs = None;
        self.own.clear();
        self.session = Session {
            id: self.session.id,
            ..Session::default()
        };
        self.entry.update(|c| {
            c.name = None;
            c.resp = 2;
            c.multi = false;
            c.sub = 0;
            c.psub = 0;
            c.ssub = 0;
        });
        self.push_done(Bytes::from_static(b"+RESET\r\n"));
    }

    fn subscriber(&mut self) -> &mut Subscriber {
        if self.subs.is_none() {
            let sink = PushSink {
                tx: self.reply_tx(),
                queued: Arc::new(AtomicUsize::new(0)),
                limit: self.shared.config.proxy.subscriber_output_limit_bytes,
                kill: self.entry.kill.clone(),
            };
            self.subs = Some(Box::new(Subscriber {
                subs: Subscriptions::default(),
                home: None,
                shard_conns: Vec::new(),
                sink,
                resub_scheduled: false,
            }));
        }
        self.subs.as_mut().expect("just set")
    }

    /// The subscriber connection for channels and patterns, or for one shard channel slot.
    fn sub_conn(&mut self, slot: Option<Slot>) -> Option<Arc<Backend>> {
        let topo = self.shared.topology.load();
        let proto = self.session.proto;
        let id = self.session.id as usize;
        let shared = self.shared.clone();
        let sub = self.subscriber();
        let dedicated = |addr: &str, sink: &PushSink| {
            shared.connector.dedicated(addr, proto, Some(sink.clone()))
        };
        if let Some(s) = slot {
            let i = topo.map.shard_of(s)?;
            let addr = &topo.map.shards()[i].master;
            if addr == NO_MASTER {
                return None;
            }
            if let Some(c) = sub.shard_conns.iter().find(|c| &*c.addr == addr) {
                return Some(c.clone());
            }
            let c = dedicated(addr, &sub.sink);
            sub.shard_conns.push(c.clone());
            return Some(c);
        }
        if let Some((_, c)) = &sub.home {
            return Some(c.clone());
        }
        let n = topo.map.shards().len();
        let i = (0..n).map(|k| (id + k) % n).find(|&i| topo.has_master(i))?;
        let c = dedicated(&topo.map.shards()[i].master, &sub.sink);
        sub.home = Some((i, c.clone()));
        Some(c)
    }

    pub(super) fn subscribe(&mut self, req: Request, family: Family, on: bool, route: Route) {
        let mut args: Vec<Bytes> = (1..req.argc()).map(|i| req.arg_bytes(i)).collect();
        if family == Family::Shard && !on && args.is_empty() {
            // Spell out the channels: they may live on several masters.
            args = self.subscriber().subs.shard.iter().cloned().collect();
            if args.len() > 1 {
                return self.sunsubscribe_all(args);
            }
        }
        let slot = match (&route, args.first()) {
            (Route::Slot(s), _) => Some(*s),
            (_, Some(c)) if family == Family::Shard => Some(Slot::for_key(c)),
            _ => None,
        };
        let Some(conn) = self.sub_conn(slot) else {
            return self.push_error(&no_master_for(slot.unwrap_or(Slot::new(0).expect("0"))));
        };
        let sub = self.subscriber();
        let frames = sub.subs.apply(family, on, &args);
        let (c, p, s) = (
            sub.subs.channels.len(),
            sub.subs.patterns.len(),
            sub.subs.shard.len(),
        );
        self.entry.update(|e| (e.sub, e.psub, e.ssub) = (c, p, s));
        let data = if args.len() + 1 == req.argc() {
            req.raw().clone()
        } else {
            let mut all: Vec<&[u8]> = vec![req.arg(0)];
            all.extend(args.iter().map(|a| &a[..]));
            Request::from_args(&all).raw().clone()
        };
        let mut unit = Unit::new(req, route);
        unit.pinned = Some(conn);
        unit.wire = Some((data, frames));
        self.push_unit(unit, Shape::Single);
    }

    /// SUNSUBSCRIBE with no arguments while shard channels live on several masters: one
    /// SUNSUBSCRIBE per channel, replies concatenated in order.
    fn sunsubscribe_all(&mut self, channels: Vec<Bytes>) {
        let mut units: SmallVec<[Unit; 1]> = SmallVec::new();
        for ch in &channels {
            let req = Request::from_args(&[&b"SUNSUBSCRIBE"[..], ch]);
            let Some(conn) = self.sub_conn(Some(Slot::for_key(ch))) else {
                continue;
            };
            let mut u = Unit::new(req, Route::Any);
            u.pinned = Some(conn);
            units.push(u);
        }
        let sub = self.subscriber();
        sub.subs.apply(Family::Shard, false, &channels);
        self.entry.update(|e| e.ssub = 0);
        let n = units.len();
        self.push_merge(
            units,
            Shape::Merge(Box::new(Merge::new(MergeKind::Frames, n, Vec::new()))),
        );
    }

    /// After a subscriber connection is lost, try again shortly or as soon as the topology
    /// changes (a failover finished).
    pub(super) fn schedule_resubscribe(&mut self) {
        let tx = self.reply_tx();
        let mut changed = self.shared.topology_changes();
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        if sub.resub_scheduled {
            return;
        }
        sub.resub_scheduled = true;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = changed.changed() => {}
            }
            let _ = tx.send(Inbox::Resubscribe);
        });
    }

    /// Re-creates every subscription on the masters of the current topology; the replies go
    /// nowhere (the client already saw its confirmations).
    pub(super) fn resubscribe(&mut self) {
        let Some(sub) = self.subs.as_mut() else {
            return;
        };
        sub.resub_scheduled = false;
        sub.home = None;
        sub.shard_conns.clear();
        let plain: Vec<(Family, Vec<Bytes>)> = [
            (Family::Channel, sub.subs.channels.iter().cloned().collect()),
            (Family::Pattern, sub.subs.patterns.iter().cloned().collect()),
        ]
        .into_iter()
        .filter(|(_, v): &(Family, Vec<Bytes>)| !v.is_empty())
        .collect();
        let shard: Vec<Bytes> = sub.subs.shard.iter().cloned().collect();
        let tx = self.reply_tx();
        let tag = Tag {
            seq: INTERNAL,
            part: 0,
        };
        let mut jobs: Vec<(Option<Slot>, Family, Vec<Bytes>)> =
            plain.into_iter().map(|(f, v)| (None, f, v)).collect();
        jobs.extend(
            shard
                .into_iter()
                .map(|c| (Some(Slot::for_key(&c)), Family::Shard, vec![c])),
        );
        for (slot, family, chans) in jobs {
            let Some(conn) = self.sub_conn(slot) else {
                return self.schedule_resubscribe();
            };
            let mut args: Vec<&[u8]> = vec![family.subscribe_command().as_bytes()];
            args.extend(chans.iter().map(|c| &c[..]));
            conn.send(Job {
                data: Request::from_args(&args).raw().clone(),
                prefix: None,
                frames: chans.len() as u32,
                tag,
                reply: tx.clone(),
            });
        }
    }
}

fn no_master_for(slot: Slot) -> ProxyError {
    ProxyError::upstream(
        true,
        format!("Hive: no writable master for slot {}", slot.get()),
    )
    .with_prefix("TRYAGAIN")
}

/// The client's answer to a MULTI ... EXEC unit: EXEC's own reply, or, when a queued command
/// was redirected (the slot moved), an EXECABORT that says so. Nothing was applied then.
pub(super) fn exec_reply(shared: &Shared, frame: Bytes) -> Bytes {
    let mut at = 0;
    let mut last = 0..0;
    let mut redirect: Option<Bytes> = None;
    while at < frame.len() {
        let mut sc = ReplyScanner::default();
        let Ok(Some(len)) = sc.scan(&frame[at..]) else {
            // A lone error (the connection failed) or garbage: pass it on.
            return frame;
        };
        let f = frame.slice(at..at + len);
        if redirect.is_none() && f.first() == Some(&b'-') && Upstream::parse(&f).is_some() {
            redirect = Some(f);
        }
        last = at..at + len;
        at += len;
    }
    let exec = frame.slice(last);
    match redirect {
        Some(r) if exec.starts_with(b"-EXECABORT") => {
            shared.refresh.notify_one();
            let why = String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned();
            let mut out = BytesMut::new();
            ProxyError::client(
                "EXECABORT",
                format!(
                    "Transaction discarded because of previous errors: {why} (Hive: the slot moved or is migrating; nothing was applied, retry the transaction)"
                ),
            )
            .write_resp(&mut out);
            out.freeze()
        }
        _ => exec,
    }
}
