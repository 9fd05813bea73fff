//! Requests that become several units: MGET/MSET/DEL/... split per slot (or per shard) and
//! merged back in key order, fan-outs to every master (DBSIZE, KEYS, SCRIPT LOAD, ...), and
//! administration sent to every node (CONFIG SET) or every master (CLIENT PAUSE).

use hive_common::resp::{PartsBuilder, Request};
use hive_common::Slot;
use smallvec::SmallVec;

use std::time::Duration;

use hive_common::resp::parse_i64;

use crate::client::pending::{Shape, Unit};
use crate::client::send::redirect::{no_master, no_topology};
use crate::client::Conn;
use crate::command::reply::every_node::NodeReplies;
use crate::command::reply::merge::{Merge, MergeKind};
use crate::command::route::Route;
use crate::config::Mode;
use crate::error::{ClientReason, ProxyError};
use crate::state::pause::PauseMode;
use hive_upstream::topology::NO_MASTER;

/// Split groups above this are single slots (cluster mode, or a slot no shard owns).
const SLOT_GROUPS: u32 = 1 << 16;

impl Conn {
    pub(crate) fn fan_out(&mut self, req: Request, kind: MergeKind) {
        let n = self.shared.plane.topology.load().map.shards().len();
        if n == 0 {
            return self.push_error(&no_topology());
        }
        if req.arg(0).eq_ignore_ascii_case(b"script") {
            if req.arg(1).eq_ignore_ascii_case(b"load") {
                self.shared.scripts.record(req.arg(2));
            } else if req.arg(1).eq_ignore_ascii_case(b"flush") {
                self.shared.scripts.clear();
            }
        }
        let kind = match kind {
            MergeKind::Random(_) => {
                MergeKind::Random((self.session.id as usize).wrapping_add(self.base as usize))
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

    /// MGET/MSET/DEL/...: one sub-request per slot, merged back in key order.
    pub(crate) fn split(&mut self, req: Request, kind: MergeKind, step: usize) {
        let argc = req.argc();
        if !(argc - 1).is_multiple_of(step) {
            let name = String::from_utf8_lossy(req.arg(0)).to_ascii_lowercase();
            return self.push_error(&ProxyError::client(
                ClientReason::WrongArity,
                format!("wrong number of arguments for '{name}' command"),
            ));
        }
        // Redis Cluster refuses a multi-key command across slots, so there a part holds one
        // slot. A standalone master takes any keys: one part per shard (a 10-key MSET over 3
        // masters is 3 parts, not 10).
        let topo = (self.shared.config.backend.mode != Mode::Cluster)
            .then(|| self.shared.plane.topology.load());
        let group_of = |s: Slot| -> u32 {
            match topo.as_ref().and_then(|t| t.map.shard_of(s)) {
                Some(shard) => shard as u32,
                None => SLOT_GROUPS + s.index() as u32,
            }
        };
        let mut units: SmallVec<[Unit; 1]> = SmallVec::new();
        let mut positions = Vec::new();
        let split = split_parts(&req, step, group_of, |n, slot, part, pos| {
            // Sized up front: regrowing these was a visible share of malloc under split MSETs.
            if units.is_empty() {
                units.reserve_exact(n);
                positions.reserve_exact(n);
            }
            units.push(Unit::new(part, Route::Slot(slot)));
            positions.push(pos);
        });
        if !split {
            let slot = Slot::for_key(req.arg(1));
            return self.push_unit(Unit::new(req, Route::Slot(slot)), Shape::Single);
        }
        let merge = Merge::new(kind, units.len(), positions);
        self.push_merge(units, Shape::Merge(Box::new(merge)));
    }

    /// The request to every master and, unless `masters`, every replica too.
    pub(crate) fn every_node(&mut self, req: Request, masters: bool) {
        crate::client::local::slowlog::follow_config_set(&req, &self.shared);
        let topo = self.shared.plane.topology.load();
        if topo.map.shards().is_empty() {
            return self.push_error(&no_topology());
        }
        if let Some(i) =
            (0..topo.map.shards().len()).find(|&i| topo.map.shards()[i].master == NO_MASTER)
        {
            return self.push_error(&no_master(topo.shard_name(i)));
        }
        let nodes: Vec<String> = topo
            .map
            .shards()
            .iter()
            .flat_map(|s| {
                let replicas = if masters { &[][..] } else { &s.replicas[..] };
                std::iter::once(s.master.clone()).chain(replicas.iter().cloned())
            })
            .collect();
        drop(topo);
        let units = nodes
            .iter()
            .map(|addr| {
                Unit::new(
                    req.clone(),
                    Route::Node {
                        addr: addr.as_str().into(),
                        asking: false,
                    },
                )
            })
            .collect();
        self.push_merge(units, Shape::Nodes(Box::new(NodeReplies::new(nodes))));
    }

    /// CLIENT PAUSE timeout [WRITE|ALL] and CLIENT UNPAUSE: every master, and the proxy's own
    /// clients wait in the proxy meanwhile.
    pub(crate) fn pause(&mut self, req: Request, on: bool) {
        if !on {
            self.shared.pause.unpause();
            return self.every_node(req, true);
        }
        let Some(ms) = parse_i64(req.arg(2)).filter(|n| *n >= 0) else {
            return self.push_error(&ProxyError::invalid(
                "timeout is not an integer or out of range",
            ));
        };
        let mode = match req.get(3) {
            None => PauseMode::All,
            Some(m) if m.eq_ignore_ascii_case(b"all") => PauseMode::All,
            Some(m) if m.eq_ignore_ascii_case(b"write") => PauseMode::Write,
            Some(_) => return self.push_error(&ProxyError::invalid("syntax error")),
        };
        if req.argc() > 4 {
            return self.push_error(&ProxyError::invalid("syntax error"));
        }
        let masters: Vec<String> = {
            let topo = self.shared.plane.topology.load();
            if let Some(i) = (0..topo.map.shards().len()).find(|&i| !topo.has_master(i)) {
                return self.push_error(&no_master(topo.shard_name(i)));
            }
            topo.map.shards().iter().map(|s| s.master.clone()).collect()
        };
        if masters.is_empty() {
            return self.push_error(&no_topology());
        }
        self.shared
            .pause
            .pause(mode, Duration::from_millis(ms as u64));
        let (router, shared) = (self.router(), self.shared.clone());
        self.spawn_reply(async move { pause_every_master(&router, &shared, req, masters).await });
    }
}

/// CLIENT PAUSE on every master. If one refuses (busy, loading, no permission), the pause is
/// undone where it applied (CLIENT UNPAUSE) and in the proxy, so no master stays paused
/// behind an error; the error names who refused.
async fn pause_every_master(
    router: &crate::emulate::Router,
    shared: &crate::state::Shared,
    req: Request,
    masters: Vec<String>,
) -> bytes::Bytes {
    use hive_upstream::route::pool;
    let calls = masters.iter().map(|m| {
        let via = pool::backend(&router.plane, m, router.proto, pool::Lane::Plain);
        let req = req.clone();
        async move { router.call_on(&via, vec![req]).await }
    });
    let replies = futures_util::future::join_all(calls).await;
    let mut applied = Vec::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    for (m, r) in masters.iter().zip(replies) {
        match r {
            Ok(f) if f[0].first() == Some(&b'+') => applied.push(m.clone()),
            Ok(f) => refused.push((m.clone(), String::from_utf8_lossy(&f[0]).trim().to_string())),
            Err(e) => refused.push((m.clone(), e.to_string())),
        }
    }
    let Some((_, first)) = refused.first() else {
        return bytes::Bytes::from_static(b"+OK\r\n");
    };
    shared.pause.unpause();
    let unpause = Request::from_args(&["CLIENT", "UNPAUSE"]);
    let undo = applied.iter().map(|m| {
        let via = pool::backend(&router.plane, m, router.proto, pool::Lane::Plain);
        let req = unpause.clone();
        async move { router.call_on(&via, vec![req]).await }
    });
    let undone = futures_util::future::join_all(undo).await;
    let still: Vec<&String> = applied
        .iter()
        .zip(&undone)
        .filter(|(_, r)| !matches!(r, Ok(f) if f[0].first() == Some(&b'+')))
        .map(|(m, _)| m)
        .collect();
    let text = first.trim_start_matches('-');
    let msg = text.split_once(' ').map_or(text, |(_, m)| m);
    let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    let after = if still.is_empty() {
        "the pause was undone on the others (CLIENT UNPAUSE) and in Hive".to_string()
    } else {
        let left: Vec<&str> = still.iter().map(|s| s.as_str()).collect();
        format!(
            "CLIENT UNPAUSE failed on {}, which stay paused",
            left.join(", ")
        )
    };
    ProxyError::upstream(
        hive_upstream::error::UpstreamReason::Refused,
        format!(
            "{msg} (Hive: refused by {} of {} masters: {}; {after})",
            names.len(),
            masters.len(),
            names.join(", ")
        ),
    )
    .frame()
}

/// Splits a command of `step` arguments per key into one part per group of `group_of`, each
/// with its keys in request order: `emit(parts, slot, part, positions)` gets each part and
/// where its keys sit in the reply. False (nothing emitted) when every key is in one group.
pub(crate) fn split_parts(
    req: &Request,
    step: usize,
    group_of: impl Fn(Slot) -> u32,
    mut emit: impl FnMut(usize, Slot, Request, SmallVec<[u32; 4]>),
) -> bool {
    let argc = req.argc();
    // Argument indexes fit in u32: the decoder bounds the argument count
    // (`max_multibulk_len`, validated below 2^31).
    let mut keys: SmallVec<[(u32, Slot, u32); 16]> = (1..argc)
        .step_by(step)
        .map(|i| {
            let s = Slot::for_key(req.arg(i));
            (group_of(s), s, i as u32)
        })
        .collect();
    let first = keys[0];
    if keys.iter().all(|k| k.0 == first.0) {
        return false;
    }
    // Stable: a part keeps its keys in request order.
    keys.sort_by_key(|k| k.0);
    let n = keys.chunk_by(|a, b| a.0 == b.0).count();
    // Every part goes into one buffer, sized up front: one allocation for the whole split, not
    // one per part (and none regrown).
    let payload: usize = keys
        .iter()
        .map(|&(_, _, i)| {
            (0..step)
                .map(|j| req.arg(i as usize + j).len())
                .sum::<usize>()
        })
        .sum::<usize>()
        + n * req.arg(0).len();
    let mut b = PartsBuilder::with_payload(n, n + keys.len() * step, payload);
    let mut meta: SmallVec<[(Slot, SmallVec<[u32; 4]>); 8]> = SmallVec::with_capacity(n);
    for group in keys.chunk_by(|a, b| a.0 == b.0) {
        b.start(1 + group.len() * step);
        b.arg(req.arg(0));
        let mut pos = SmallVec::new();
        for &(_, _, i) in group {
            for j in 0..step {
                b.arg(req.arg(i as usize + j));
            }
            pos.push((i - 1) / step as u32);
        }
        meta.push((group[0].1, pos));
    }
    for (part, (slot, pos)) in b.finish().zip(meta) {
        emit(n, slot, part, pos);
    }
    true
}
