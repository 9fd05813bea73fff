//! SCAN through the proxy: whole slots per step in a cluster, node SCANs shard by shard
//! otherwise (the cursor layout is in `command::reply::scan_cursor`). One call fills up to
//! COUNT keys from the next slots or shards when one runs out, as one Redis answers a small
//! keyspace in one call; the cursor stays slot-stable.

use bytes::Bytes;
use hive_common::resp::Request;
use hive_common::Slot;

use crate::client::send::redirect::no_topology;
use crate::client::Conn;
use crate::command::reply::scan_cursor::{
    join_cursor, matching, node_page, reply, slot_key, slot_keys, split_cursor, ScanArgs,
    SLOT_SCRIPT,
};
use crate::config::Mode;
use crate::emulate::Router;
use crate::error::ProxyError;

/// Slots read per round at most; rounds start at COUNT slots and double while keys are few.
const MAX_SLOTS_PER_STEP: usize = 1024;

/// Node SCANs per call at most (each returns about COUNT keys when there are any), so a call
/// that MATCHes little still answers in bounded time, with a cursor to go on from.
const MAX_NODE_SCANS: usize = 64;

impl Conn {
    pub(crate) fn scan(&mut self, req: Request) {
        let args: Vec<&[u8]> = req.args().skip(1).collect();
        let a = match ScanArgs::parse(&args) {
            Ok(a) => a,
            Err(e) => return self.push_error(&ProxyError::invalid(e)),
        };
        let router = self.router();
        if self.shared.config.backend.mode == Mode::Cluster {
            if a.cursor >= 16384 {
                return self.push_error(&ProxyError::invalid("invalid cursor"));
            }
            return self.spawn_reply(async move { scan_slots(&router, a).await });
        }
        // Each shard's first slot, in slot order: the shards' order in the cursor.
        let topo = self.shared.plane.topology.load();
        let mut firsts: Vec<u16> = topo
            .map
            .ranges()
            .iter()
            .filter_map(|r| r.iter().map(|r| r.start).min())
            .collect();
        drop(topo);
        firsts.sort();
        let (node_cursor, pos) = if a.cursor == 0 {
            match firsts.first() {
                Some(&f) => (0, f),
                None => return self.push_error(&no_topology()),
            }
        } else {
            split_cursor(a.cursor)
        };
        let Some(k) = firsts.iter().position(|&f| f == pos) else {
            return self.push_error(&ProxyError::invalid("invalid cursor"));
        };
        let rest = firsts[k..].to_vec();
        self.spawn_reply(async move { scan_nodes(&router, a, node_cursor, rest).await });
    }
}

/// Cluster mode: whole slots from the cursor's, until COUNT keys or the last slot.
async fn scan_slots(router: &Router, a: ScanArgs) -> Bytes {
    let kind = a.kind.clone().unwrap_or_default();
    let mut at = a.cursor as usize;
    let mut step = a.count.clamp(10, MAX_SLOTS_PER_STEP);
    let mut keys: Vec<Bytes> = Vec::new();
    while at < 16384 && keys.len() < a.count {
        let end = (at + step).min(16384);
        let reqs = (at..end)
            .filter_map(|s| {
                let slot = Slot::new(s as u16)?;
                let n = s.to_string();
                let req = Request::from_args(&[
                    b"EVAL".as_slice(),
                    SLOT_SCRIPT.as_bytes(),
                    b"1",
                    slot_key(s as u16).as_bytes(),
                    n.as_bytes(),
                    &kind,
                ]);
                Some((slot, req))
            })
            .collect();
        for r in router.scatter(reqs).await {
            let frame = match r {
                Ok(f) => f,
                Err(e) => return e.frame(),
            };
            match slot_keys(&frame) {
                Ok(mut k) => {
                    matching(&mut k, a.pattern.as_ref());
                    keys.extend(k);
                }
                Err(e) => return e,
            }
        }
        at = end;
        step = (step * 2).min(MAX_SLOTS_PER_STEP);
    }
    reply(if at >= 16384 { 0 } else { at as u64 }, &keys)
}

/// Sentinel and static modes: the node's own SCAN on the shard whose first slot is
/// `shards[0]`, then on the next shards, until COUNT keys or the last shard.
async fn scan_nodes(router: &Router, a: ScanArgs, mut cursor: u64, shards: Vec<u16>) -> Bytes {
    let mut keys: Vec<Bytes> = Vec::new();
    let mut k = 0;
    for _ in 0..MAX_NODE_SCANS {
        let c = cursor.to_string();
        let count = a.count.to_string();
        let mut args: Vec<&[u8]> = vec![b"SCAN", c.as_bytes(), b"COUNT", count.as_bytes()];
        if let Some(p) = &a.pattern {
            args.extend([&b"MATCH"[..], p]);
        }
        if let Some(t) = &a.kind {
            args.extend([&b"TYPE"[..], t]);
        }
        let Some(slot) = Slot::new(shards[k]) else {
            return ProxyError::invalid("invalid cursor").frame();
        };
        let frame = match router.call(slot, vec![Request::from_args(&args)]).await {
            Ok(f) => f.into_iter().next().unwrap_or_default(),
            Err(e) => return e.frame(),
        };
        let (next, page) = match node_page(&frame) {
            Ok(p) => p,
            Err(e) => return e,
        };
        keys.extend(page);
        if next == 0 {
            k += 1;
            if k == shards.len() {
                return reply(0, &keys);
            }
        }
        cursor = next;
        if keys.len() >= a.count {
            break;
        }
    }
    match join_cursor(cursor, shards[k]) {
        Some(c) => reply(c, &keys),
        None => {
            crate::command::reply::scan_cursor::error("a node's SCAN cursor is too large to encode")
        }
    }
}
