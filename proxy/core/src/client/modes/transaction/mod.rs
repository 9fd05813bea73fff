//! Transactions: MULTI queues in the proxy and EXEC sends MULTI ... EXEC as one unit to the
//! node of the transaction's slot; WATCH pins the client to a connection of its own there.

pub(crate) mod shards;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hive_common::resp::{ReplyScanner, Request};
use hive_common::Slot;

use crate::client::pending::{Shape, Unit};
use crate::client::Conn;
use crate::command::classify::{crossslot, Action, TxCmd};
use crate::command::local_cmd::{LocalCmd, Plain};
use crate::command::route::Route;
use crate::config::Mode;
use crate::error::{ClientReason, ProxyError, UpstreamReason};
use crate::state::Shared;
use hive_upstream::conn::backend::Backend;
use hive_upstream::reply_error::ReplyError;
use hive_upstream::topology::NO_MASTER;

/// A transaction being queued by the proxy; it is sent as one unit at EXEC.
#[derive(Default)]
pub(crate) struct Multi {
    pub queued: Vec<Request>,
    /// Bytes of `queued`, bounded by `client_query_buffer_limit`.
    pub bytes: usize,
    pub slot: Option<Slot>,
    pub dirty: bool,
    /// `proxy.cross_slot = "emulate"` and the commands touch several nodes: EXEC runs one
    /// MULTI/EXEC per node (`shards`), with each command's slot in `slots`.
    pub spread: bool,
    pub slots: Vec<Option<Slot>>,
    /// MGET/MSET/DEL/... across slots, split per slot (`proxy.cross_slot = "emulate"`).
    pub splits: Vec<Option<Box<shards::TxSplit>>>,
}

/// WATCH pins the client to a connection of its own on the node that owns the watched slot.
pub(crate) struct Watch {
    pub slot: Slot,
    pub conn: Arc<Backend>,
    /// Connections pinned on other nodes (`proxy.cross_slot = "emulate"`).
    pub more: Vec<(Slot, Arc<Backend>)>,
}

fn err(m: impl Into<String>) -> ProxyError {
    ProxyError::invalid(m)
}

impl Conn {
    /// Whether two slots are served together: the same slot in a cluster (which is what Redis
    /// Cluster requires), the same shard in the other modes (which never move slots).
    pub(crate) fn same_node(&self, a: Slot, b: Slot) -> bool {
        if self.shared.config.backend.mode == Mode::Cluster {
            return a == b;
        }
        let topo = self.shared.plane.topology.load();
        topo.map.shard_of(a) == topo.map.shard_of(b)
    }

    pub(crate) fn tx(&mut self, req: Request, cmd: TxCmd) {
        match cmd {
            TxCmd::Multi => {
                self.multi = Some(Box::default());
                self.entry.update(|c| c.multi = true);
                self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            TxCmd::Exec => self.push_error(&err("EXEC without MULTI")),
            TxCmd::Discard => self.push_error(&err("DISCARD without MULTI")),
            TxCmd::Unwatch => {
                self.release_watch();
                self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            TxCmd::Watch(route) => self.watch(req, route),
            TxCmd::WatchShards => self.watch_shards(req),
        }
    }

    fn watch(&mut self, req: Request, route: Route) {
        let Route::Slot(slot) = route else {
            return self.push_error(&ProxyError::client(
                ClientReason::WrongArity,
                "wrong number of arguments for 'watch' command",
            ));
        };
        let conn = match &self.watch {
            Some(w) if !self.same_node(w.slot, slot) => return self.watch_shards(req),
            Some(w) => w.conn.clone(),
            None => match self.master_addr(slot) {
                Some(addr) => match self.watch_spare.iter().position(|c| *c.addr == *addr) {
                    Some(i) => self.watch_spare.swap_remove(i),
                    None => self
                        .shared
                        .plane
                        .connector
                        .dedicated(&addr, self.session.proto, None),
                },
                None => return self.push_error(&no_master_for(Some(slot))),
            },
        };
        self.watch = Some(Watch {
            slot,
            conn: conn.clone(),
            more: Vec::new(),
        });
        let mut unit = Unit::new(req, route);
        unit.extra().pinned = Some(conn);
        self.push_unit(unit, Shape::Single);
    }

    fn master_addr(&self, slot: Slot) -> Option<String> {
        let topo = self.shared.plane.topology.load();
        let i = topo.map.shard_of(slot)?;
        let m = &topo.map.shards()[i].master;
        (m != NO_MASTER).then(|| m.clone())
    }

    pub(crate) fn queue_in_multi(&mut self, req: Request, action: Action) {
        match action {
            Action::Tx(TxCmd::Exec) => return self.exec(),
            Action::Tx(TxCmd::Discard) => {
                self.end_multi();
                return self.push_done(Bytes::from_static(b"+OK\r\n"));
            }
            Action::Tx(TxCmd::Multi) => {
                return self.push_error(&err("MULTI calls can not be nested"))
            }
            Action::Tx(TxCmd::Watch(_) | TxCmd::WatchShards) => {
                return self.push_error(&err("WATCH inside MULTI is not allowed"))
            }
            Action::Reset | Action::Local(LocalCmd::Plain(Plain::Quit)) => {
                return self.run(req, action)
            }
            _ => {}
        }
        let req = match action {
            // Split per slot; one slot: queued as any command.
            Action::Split { kind, step } if self.emulating() => {
                match self.queue_split(req, kind, step) {
                    Some(req) => req,
                    None => return,
                }
            }
            _ => req,
        };
        match self.tx_slot(&req, action) {
            Ok(slot) => {
                let pinned = self.watch.as_ref().map(|w| w.slot);
                if self.multi.is_none() {
                    return;
                }
                let mut spread = false;
                if let Some(s) = slot {
                    let other = self.multi.as_ref().and_then(|m| m.slot).or(pinned);
                    if let Some(o) = other {
                        if !self.same_node(o, s) {
                            if !self.emulating() {
                                self.mark_dirty();
                                return self.push_error(&crossslot());
                            }
                            spread = true;
                        }
                    }
                    if let Some(m) = self.multi.as_mut() {
                        m.slot.get_or_insert(s);
                    }
                }
                let limit = self.shared.live.load().proxy.client_query_buffer_limit.0;
                if let Some(m) = self.multi.as_mut() {
                    if m.bytes + req.raw().len() > limit {
                        // Redis would count it against the client's memory; here the
                        // transaction cannot be sent, so it is aborted as a bad command is.
                        self.mark_dirty();
                        return self.push_error(&err(
                            "Hive: the transaction's queued commands are over proxy.client_query_buffer_limit",
                        ));
                    }
                    m.bytes += req.raw().len();
                    m.queued.push(req);
                    m.slots.push(slot);
                    m.splits.push(None);
                    m.spread |= spread;
                }
                // Counted when EXEC runs it, as Redis counts it.
                self.queued += 1;
                self.push_done(Bytes::from_static(b"+QUEUED\r\n"));
            }
            Err(e) => {
                self.mark_dirty();
                self.push_error(&e);
            }
        }
    }

    /// Bytes queued in an open MULTI.
    pub(crate) fn multi_bytes(&self) -> usize {
        self.multi.as_ref().map_or(0, |m| m.bytes)
    }

    fn mark_dirty(&mut self) {
        if let Some(m) = self.multi.as_mut() {
            m.dirty = true;
        }
    }

    fn end_multi(&mut self) {
        self.multi = None;
        self.release_watch();
        self.entry.update(|c| c.multi = false);
    }

    /// Ends WATCH without EXEC (UNWATCH, DISCARD, RESET): UNWATCH on the node, then the
    /// connection is kept for the next WATCH (UNWATCH goes first on it, in order).
    pub(crate) fn release_watch(&mut self) {
        let Some(w) = self.watch.take() else { return };
        let (tx, _) = hive_upstream::mailbox::channel();
        for c in std::iter::once(w.conn).chain(w.more.into_iter().map(|(_, c)| c)) {
            c.send(hive_upstream::Job {
                data: Request::from_args(&["UNWATCH"]).raw().clone(),
                prefix: None,
                frames: 1,
                tag: hive_upstream::Tag { seq: 0, part: 0 },
                reply: tx.clone(),
                ack: false,
            });
            self.keep_watch_conn(c);
        }
    }

    /// Keeps a WATCH connection whose watches are cleared (or will be, by what is already
    /// queued on it), at most a few.
    fn keep_watch_conn(&mut self, c: Arc<Backend>) {
        if self.watch_spare.len() < 4 && !self.watch_spare.iter().any(|s| s.addr == c.addr) {
            self.watch_spare.push(c);
        }
    }

    /// The slot a queued command needs, or why it cannot be part of a transaction.
    fn tx_slot(&self, req: &Request, action: Action) -> Result<Option<Slot>, ProxyError> {
        let name = || String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
        match action {
            Action::Error(e) => Err(e),
            Action::CrossSlot { .. } | Action::BlockAcross(_) => Err(crossslot()),
            Action::Forward(Route::Slot(s)) | Action::Blocking(Route::Slot(s)) => Ok(Some(s)),
            Action::Forward(_) | Action::Blocking(_) | Action::Local(LocalCmd::Plain(Plain::Ping | Plain::Echo)) => Ok(None),
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
            _ => Err(ProxyError::client(ClientReason::NotSupported, format!(
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
        if !m.dirty {
            self.count_queued(&m.queued);
        }
        if m.dirty {
            return self.push_error(&ProxyError::client(
                ClientReason::ExecAbort,
                "Transaction discarded because of previous errors.",
            ));
        }
        if m.spread || watch.as_ref().is_some_and(|w| !w.more.is_empty()) {
            return self.exec_shards(*m, watch);
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
        unit.extra().wire = Some((wire.freeze(), m.queued.len() as u32 + 2));
        // An ASK names one key missing on a migrating slot's source; the others may still be
        // there, so the whole transaction on the importing node could write a key twice. It
        // waits for the slot to settle (then MOVED, followed) instead.
        unit.no_ask = true;
        if let Some(w) = &watch {
            // EXEC clears its watches on the node, before anything sent on it later.
            self.keep_watch_conn(w.conn.clone());
        }
        if let Some(w) = watch {
            unit.extra().pinned = Some(w.conn);
        }
        self.push_unit(unit, Shape::Exec);
    }
}

impl Conn {
    /// EXEC runs the queued commands: counted now, in INFO and per command, as Redis counts
    /// them (a DISCARDed or aborted transaction's never are).
    fn count_queued(&mut self, queued: &[Request]) {
        let table = hive_common::command::CommandTable::get();
        for r in queued {
            let Some(spec) = table.lookup(r.arg(0)) else {
                continue;
            };
            let spec = r.get(1).and_then(|s| spec.subcommand(s)).unwrap_or(spec);
            self.worker.count(spec.id);
        }
        crate::metrics::Stats::add(&self.shared.stats.commands_processed, queued.len() as u64);
    }
}

pub(crate) fn no_master_for(slot: Option<Slot>) -> ProxyError {
    let what = slot.map_or("any shard".to_string(), |s| format!("slot {}", s.get()));
    ProxyError::upstream(
        UpstreamReason::NoMaster,
        format!("Hive: no writable master for {what}"),
    )
}

/// A transaction unit's replies, scanned once: the first queued command's error that the
/// proxy acts on (a redirect, TRYAGAIN…) when EXEC was aborted, and EXEC's own frame.
/// `None` for a lone error (the connection failed) or garbage: passed on as it is.
fn scan_exec(frame: &Bytes) -> Option<(Option<Bytes>, Bytes)> {
    let mut at = 0;
    let mut last = 0..0;
    let mut redirect: Option<Bytes> = None;
    while at < frame.len() {
        let mut sc = ReplyScanner::default();
        let Ok(Some(len)) = sc.scan(&frame[at..]) else {
            return None;
        };
        let f = frame.slice(at..at + len);
        if redirect.is_none() && ReplyError::parse(&f).is_some_and(|e| e.acted_on()) {
            redirect = Some(f);
        }
        last = at..at + len;
        at += len;
    }
    let exec = frame.slice(last);
    let aborted = ReplyError::parse(&exec) == Some(ReplyError::ExecAbort);
    Some((redirect.filter(|_| aborted), exec))
}

/// When EXEC was aborted because a queued command was redirected or told to wait (the slot
/// moved or is migrating): that command's error frame. Nothing was applied then, so the unit
/// may run again.
pub(crate) fn exec_aborted_by(frame: &Bytes) -> Option<Bytes> {
    scan_exec(frame).and_then(|(r, _)| r)
}

/// The client's answer to a MULTI ... EXEC unit: EXEC's own reply, or, when a queued command
/// was redirected and the retries ran out, an EXECABORT that says so. Nothing was applied then.
pub(crate) fn exec_reply(shared: &Shared, frame: Bytes) -> Bytes {
    match scan_exec(&frame) {
        None => frame,
        Some((None, exec)) => exec,
        Some((Some(r), _)) => {
            shared.plane.refresh.notify_one();
            let why = String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned();
            ProxyError::client(
                ClientReason::ExecAbort,
                format!(
                    "Transaction discarded because of previous errors: {why} (Hive: the slot moved or is migrating; nothing was applied, retry the transaction)"
                ),
            )
            .frame()
        }
    }
}
