//! What a connection's requests do to the near cache (`crate::cache`): a read it answers is
//! answered from it, or sent with a `PTTL` to fill it; a write drops its keys when it is sent
//! and again just before its reply goes out, so the writer (and anyone after it) never reads
//! the old value from the cache. Writes queued in MULTI count at EXEC.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use hive_common::command::{flag, CommandSpec, KeyPositions};
use hive_common::resp::Request;

use crate::client::pending::{Shape, Unit};
use crate::client::Conn;
use crate::command::classify::Action;
use crate::command::route::Route;
use hive_upstream::Tag;

/// Keys a write changes.
enum Written {
    Keys(Vec<Bytes>),
    /// FLUSHALL, FLUSHDB, SWAPDB, FUNCTION ...: writes without keys.
    All,
}

/// A connection's share of the near cache's bookkeeping, made with its first request.
#[derive(Default)]
pub(crate) struct NearConn {
    /// The read `forward`/`split` may answer from the cache (its command id).
    cmd: Option<u16>,
    /// Writes sent and not yet answered, by sequence number.
    writes: VecDeque<(u64, Written)>,
    /// Writes queued in MULTI, dropped again when EXEC is answered.
    tx: Vec<Bytes>,
    tx_all: bool,
    /// Where GET hits' replies are cut from (`NearCache::lookup_into`).
    arena: BytesMut,
}

impl Conn {
    /// Before a request runs: marks a read the cache may answer; drops a write's keys now and
    /// returns them, to be dropped again before its reply.
    fn near_before(
        &mut self,
        req: &Request,
        spec: &CommandSpec,
        action: &Action,
    ) -> Option<Written> {
        let cache = self.shared.cache.as_ref()?;
        let near = self.near.get_or_insert_with(Default::default);
        near.cmd = None;
        if matches!(action, Action::Error(_)) {
            return None;
        }
        let plain = self.multi.is_none() && self.watch.is_none() && self.subs.is_none();
        if plain
            && cache.answers(spec.id)
            && matches!(action, Action::Forward(_) | Action::Split { .. })
        {
            near.cmd = Some(spec.id);
            return None;
        }
        let name = spec.name.as_str();
        if self.multi.is_some() && name == "discard" {
            near.tx.clear();
            near.tx_all = false;
            return None;
        }
        if name == "exec" {
            let keys = std::mem::take(&mut near.tx);
            let all = std::mem::take(&mut near.tx_all);
            return Some(if all {
                Written::All
            } else {
                Written::Keys(keys)
            });
        }
        if !spec.has(flag::REPLICATES) {
            return None;
        }
        let written = if spec.key_specs.is_empty() {
            cache.flush();
            Written::All
        } else {
            let mut at = KeyPositions::new();
            if spec.keys(req, &mut at).is_err() {
                return None;
            }
            let keys: Vec<Bytes> = at.iter().map(|&i| req.arg_bytes(i as usize)).collect();
            cache.invalidate(&keys);
            Written::Keys(keys)
        };
        if self.multi.is_some() {
            match written {
                Written::All => near.tx_all = true,
                Written::Keys(k) => near.tx.extend(k),
            }
            return None;
        }
        Some(written)
    }

    /// Runs `action` with the near cache's bookkeeping around it (only when the cache is on).
    pub(in crate::client) fn dispatch_near(
        &mut self,
        req: Request,
        spec: Option<&CommandSpec>,
        action: Action,
    ) {
        let written = spec.and_then(|s| self.near_before(&req, s, &action));
        let before = self.pending.len();
        self.dispatch_action(req, action);
        // The mark is for this request's own `forward`/`split` only, never a later send.
        if let Some(n) = &mut self.near {
            n.cmd = None;
        }
        if let Some(w) = written.filter(|_| self.held.is_none() && self.pending.len() > before) {
            let seq = self.base + before as u64;
            if let Some(n) = &mut self.near {
                n.writes.push_back((seq, w));
            }
        }
    }

    /// A read the cache may answer: answered (`None`), sent as a fill (`None`), or handed
    /// back to be sent as usual.
    pub(crate) fn near_read(&mut self, req: Request, route: &Route) -> Option<Request> {
        let Some(near) = self.near.as_mut() else {
            return Some(req);
        };
        let Some(cmd) = near.cmd.take() else {
            return Some(req);
        };
        // Borrowed, not cloned: an `Arc` clone per read would be a shared atomic per request.
        let Some(cache) = self.shared.cache.as_ref() else {
            return Some(req);
        };
        match cache.lookup_into(cmd, &req, self.session.resp3(), &mut near.arena) {
            crate::cache::Lookup::Pass => Some(req),
            crate::cache::Lookup::Busy => {
                self.worker.cache_misses.add(1);
                Some(req)
            }
            crate::cache::Lookup::InFlight(gen) => {
                self.worker.cache_misses.add(1);
                let waiter = crate::cache::Waiter {
                    tx: self.reply_tx(),
                    seq: self.next_seq(),
                    resp3: self.session.resp3(),
                };
                let joined = match self.shared.cache.as_ref() {
                    Some(cache) => cache.join(req.arg(1), gen, waiter).is_ok(),
                    None => false,
                };
                if !joined {
                    // That fill is back already: this read goes as it is.
                    return Some(req);
                }
                self.worker.cache_joined.add(1);
                let mut unit = Unit::new(req, route.clone());
                unit.large = self.large.on;
                self.push_waiting(unit);
                None
            }
            crate::cache::Lookup::Hit(reply) => {
                self.worker.cache_hits.add(1);
                if self.sample.tick() {
                    let every = self.sample.every();
                    self.worker.hotkeys.sample(req.arg(1), reply.len(), every);
                }
                self.push_done(reply);
                None
            }
            crate::cache::Lookup::Miss(fill, wire) => {
                self.worker.cache_misses.add(1);
                // Fills read the master: a replica may not have a change whose invalidation
                // has already come, and none would come again.
                let route = match route {
                    Route::Replica { slot, .. } => Route::Slot(*slot),
                    r => r.clone(),
                };
                let mut unit = Unit::new(req, route);
                unit.large = self.large.on;
                unit.extra().wire = Some((wire, 2));
                self.push_unit(unit, Shape::Fill(fill));
                None
            }
        }
    }

    /// The reply of a GET that waited for another read's fill, or `None`: send it now.
    pub(in crate::client) fn on_joined(&mut self, seq: u64, frame: Option<Bytes>) {
        match frame {
            Some(f) => self.complete(Tag { seq, part: 0 }, f),
            None => self.send(seq, 0),
        }
    }

    /// Before replies up to sequence `end` (exclusive) go out: the keys of the writes among
    /// them are dropped again, so no read that raced the write left the old value behind.
    pub(in crate::client) fn near_replies(&mut self, end: u64) {
        let (Some(near), Some(cache)) = (self.near.as_mut(), self.shared.cache.as_ref()) else {
            return;
        };
        while near.writes.front().is_some_and(|(seq, _)| *seq < end) {
            if let Some((_, w)) = near.writes.pop_front() {
                match w {
                    Written::Keys(k) => cache.invalidate(&k),
                    Written::All => cache.flush(),
                }
            }
        }
    }
}
