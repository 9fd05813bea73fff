//! Transactions across shards (`proxy.cross_slot = "emulate"`): WATCH pins a connection on
//! every node that owns a watched key; EXEC checks every watched node first (an empty
//! MULTI/EXEC answers nil there if a watched key changed, and then nothing runs anywhere),
//! then runs one MULTI/EXEC per node and puts the replies back in the order queued. Atomic
//! per node only.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use hive_common::resp::{write_array_header, Request};
use hive_common::Slot;
use smallvec::SmallVec;

use crate::client::modes::transaction::{no_master_for, Multi, Watch};
use crate::client::pending::{Shape, Unit};
use crate::client::send::fanout::split_parts;
use crate::client::Conn;
use crate::command::classify::crossslot;
use crate::command::reply::merge::{Merge, MergeKind};
use crate::command::route::Route;
use crate::config::Mode;
use crate::emulate::Router;
use crate::error::{ClientReason, ProxyError};
use hive_upstream::conn::backend::Backend;
use hive_upstream::route::router::split_frames;
use hive_upstream::Proto;

/// A split command queued in a transaction across shards: one part per slot, merged back.
pub(crate) struct TxSplit {
    kind: MergeKind,
    parts: Vec<(Slot, Request)>,
    positions: Vec<SmallVec<[u32; 4]>>,
}

impl Conn {
    /// Queues MGET/MSET/DEL/... whose keys span slots as one part per slot; gives the request
    /// back when its keys share one slot (queued as any command then).
    pub(crate) fn queue_split(
        &mut self,
        req: Request,
        kind: MergeKind,
        step: usize,
    ) -> Option<Request> {
        let argc = req.argc();
        if !(argc - 1).is_multiple_of(step) {
            return Some(req);
        }
        let first = Slot::for_key(req.arg(1));
        let mut parts = Vec::new();
        let mut positions = Vec::new();
        // Per slot: a node's part of a cluster transaction must keep to one slot.
        let split = split_parts(
            &req,
            step,
            |s| s.get() as u32,
            |_, slot, part, pos| {
                parts.push((slot, part));
                positions.push(pos);
            },
        );
        if !split {
            return Some(req);
        }
        let limit = self.shared.live.load().proxy.client_query_buffer_limit.0;
        let m = self.multi.as_mut()?;
        if m.bytes + req.raw().len() > limit {
            // As for any queued command: the transaction cannot be sent.
            m.dirty = true;
            self.push_error(&ProxyError::invalid(
                "Hive: the transaction's queued commands are over proxy.client_query_buffer_limit",
            ));
            return None;
        }
        m.bytes += req.raw().len();
        m.slot.get_or_insert(first);
        m.spread = true;
        m.queued.push(req);
        m.slots.push(Some(first));
        m.splits.push(Some(Box::new(TxSplit {
            kind,
            parts,
            positions,
        })));
        // Counted when EXEC runs it, as Redis counts it.
        self.queued += 1;
        self.push_done(Bytes::from_static(b"+QUEUED\r\n"));
        None
    }

    /// WATCH of keys that live on several nodes (or on another node than earlier WATCHes).
    pub(crate) fn watch_shards(&mut self, req: Request) {
        if !self.emulating() {
            return self.push_error(&crossslot());
        }
        // Keys grouped by node, in first-seen order.
        let mut groups: Vec<(Slot, Vec<&[u8]>)> = Vec::new();
        for key in req.args().skip(1) {
            let s = Slot::for_key(key);
            match groups.iter_mut().find(|(g, _)| self.same_node(*g, s)) {
                Some((_, keys)) => keys.push(key),
                None => groups.push((s, vec![key])),
            }
        }
        let mut units: SmallVec<[Unit; 1]> = SmallVec::new();
        for (slot, keys) in groups {
            let Some(conn) = self.watch_conn(slot) else {
                return self.push_error(&no_master_for(Some(slot)));
            };
            let mut args: Vec<&[u8]> = vec![b"WATCH"];
            args.extend(keys);
            let mut u = Unit::new(Request::from_args(&args), Route::Slot(slot));
            u.extra().pinned = Some(conn);
            units.push(u);
        }
        let n = units.len();
        self.push_merge(
            units,
            Shape::Merge(Box::new(Merge::new(MergeKind::AllOk, n, Vec::new()))),
        );
    }

    /// The pinned WATCH connection on `slot`'s node, made if there is none yet.
    fn watch_conn(&mut self, slot: Slot) -> Option<Arc<Backend>> {
        if let Some(w) = &self.watch {
            if self.same_node(w.slot, slot) {
                return Some(w.conn.clone());
            }
            if let Some((_, c)) = w.more.iter().find(|(s, _)| self.same_node(*s, slot)) {
                return Some(c.clone());
            }
        }
        let topo = self.shared.plane.topology.load();
        let i = topo.map.shard_of(slot)?;
        let addr = topo.map.shards()[i].master.clone();
        if addr == hive_upstream::topology::NO_MASTER {
            return None;
        }
        let conn = self
            .shared
            .plane
            .connector
            .dedicated(&addr, self.session.proto, None);
        match &mut self.watch {
            Some(w) => w.more.push((slot, conn.clone())),
            None => {
                self.watch = Some(Watch {
                    slot,
                    conn: conn.clone(),
                    more: Vec::new(),
                })
            }
        }
        Some(conn)
    }

    /// EXEC of a transaction that spans nodes or watches keys on several.
    pub(crate) fn exec_shards(&mut self, m: Multi, watch: Option<Watch>) {
        let cluster = self.shared.config.backend.mode == Mode::Cluster;
        let topo = self.shared.plane.topology.load();
        // One group per node: per slot in a cluster (Redis Cluster runs a transaction in one
        // slot), per shard otherwise.
        let group_of = |s: Slot| -> u32 {
            if cluster {
                s.get() as u32
            } else {
                topo.map
                    .shard_of(s)
                    .map_or(1 << 16 | s.get() as u32, |i| i as u32)
            }
        };
        // Every command becomes one piece, or one per slot when split.
        let mut pieces: Vec<Request> = Vec::new();
        let mut slots: Vec<Option<Slot>> = Vec::new();
        let mut shape: Vec<Pieces> = Vec::new();
        for ((req, slot), split) in m.queued.into_iter().zip(m.slots).zip(m.splits) {
            match split {
                Some(sp) => {
                    let TxSplit {
                        kind,
                        parts,
                        positions,
                    } = *sp;
                    shape.push(Pieces {
                        pieces: parts.len(),
                        merge: Some((kind, positions)),
                    });
                    for (s, r) in parts {
                        pieces.push(r);
                        slots.push(Some(s));
                    }
                }
                None => {
                    shape.push(Pieces {
                        pieces: 1,
                        merge: None,
                    });
                    pieces.push(req);
                    slots.push(slot);
                }
            }
        }
        let mut groups: Vec<(u32, Slot, Vec<usize>)> = Vec::new();
        let first = slots.iter().flatten().next().copied();
        for (i, s) in slots.iter().enumerate() {
            // Keyless commands (PING, ...) run with the first command that has a key.
            let Some(s) = s.or(first) else { continue };
            let g = group_of(s);
            match groups.iter_mut().find(|(k, _, _)| *k == g) {
                Some((_, _, idx)) => idx.push(i),
                None => groups.push((g, s, vec![i])),
            }
        }
        drop(topo);
        let watched: Vec<Arc<Backend>> = watch
            .map(|w| {
                std::iter::once(w.conn)
                    .chain(w.more.into_iter().map(|(_, c)| c))
                    .collect()
            })
            .unwrap_or_default();
        let router = self.router();
        self.spawn_reply(async move { run(router, pieces, shape, groups, watched).await });
    }
}

/// How many pieces a queued command became, and how they merge back.
struct Pieces {
    pieces: usize,
    merge: Option<(MergeKind, Vec<SmallVec<[u32; 4]>>)>,
}

async fn run(
    router: Router,
    queued: Vec<Request>,
    shape: Vec<Pieces>,
    groups: Vec<(u32, Slot, Vec<usize>)>,
    watched: Vec<Arc<Backend>>,
) -> Bytes {
    let null = if router.proto == Proto::Resp3 {
        Bytes::from_static(b"_\r\n")
    } else {
        Bytes::from_static(b"*-1\r\n")
    };
    let checks = join_all(
        watched
            .iter()
            .map(|c| router.call_on(c, vec![multi(), exec()])),
    )
    .await;
    for c in checks {
        match c {
            Ok(f) if f.len() == 2 && is_null(&f[1]) => return null,
            Ok(_) => {}
            Err(e) => return e.frame(),
        }
    }
    let n = queued.len();
    let runs = join_all(groups.iter().map(|(_, slot, idx)| {
        let mut batch = Vec::with_capacity(idx.len() + 2);
        batch.push(multi());
        batch.extend(idx.iter().map(|&i| queued[i].clone()));
        batch.push(exec());
        router.call(*slot, batch)
    }))
    .await;
    let mut replies: Vec<Option<Bytes>> = vec![None; n];
    let mut failed: Option<String> = None;
    let mut applied = 0;
    for ((_, _, idx), r) in groups.iter().zip(runs) {
        let why = match r {
            Ok(frames) => match frames.last().and_then(|f| elements(f, idx.len())) {
                Some(els) => {
                    applied += 1;
                    for (&i, e) in idx.iter().zip(els) {
                        replies[i] = Some(e);
                    }
                    continue;
                }
                None => {
                    // A queued command refused by the node, or EXECABORT: say which.
                    let bad = frames
                        .iter()
                        .find(|f| f.first() == Some(&b'-'))
                        .map(|f| String::from_utf8_lossy(&f[1..f.len() - 2]).into_owned());
                    bad.unwrap_or_else(|| "unexpected EXEC reply".into())
                }
            },
            Err(e) => e.to_string(),
        };
        failed.get_or_insert(why);
    }
    if let Some(why) = failed {
        return ProxyError::client(
            ClientReason::ExecAbort,
            format!(
                "Transaction discarded because of previous errors: {why} (Hive: the transaction spans {} nodes and {applied} of them applied their part)",
                groups.len()
            ),
        )
        .frame();
    }
    let mut out = BytesMut::new();
    write_array_header(&mut out, shape.len());
    let mut replies = replies.into_iter().flatten();
    for sh in shape {
        let parts: Vec<Bytes> = replies.by_ref().take(sh.pieces).collect();
        match sh.merge {
            None => parts.iter().for_each(|r| out.extend_from_slice(r)),
            Some((kind, positions)) => {
                let mut m = Merge::new(kind, sh.pieces, positions);
                let mut done = None;
                for (j, r) in parts.into_iter().enumerate() {
                    done = m.add(j, r);
                }
                if let Some(r) = done {
                    out.extend_from_slice(&r);
                }
            }
        }
    }
    out.freeze()
}

fn multi() -> Request {
    Request::from_args(&["MULTI"])
}

fn exec() -> Request {
    Request::from_args(&["EXEC"])
}

fn is_null(f: &[u8]) -> bool {
    matches!(f, b"*-1\r\n" | b"_\r\n")
}

/// The `n` elements of an array reply.
fn elements(frame: &Bytes, n: usize) -> Option<Vec<Bytes>> {
    let rest = frame.strip_prefix(b"*")?;
    let nl = memchr::memchr(b'\n', rest)?;
    let count = hive_common::resp::parse_i64(&rest[..nl.checked_sub(1)?])?;
    if count != n as i64 {
        return None;
    }
    let body = frame.slice(1 + nl + 1..);
    let els = split_frames(&body, n);
    (els.len() == n).then_some(els)
}
