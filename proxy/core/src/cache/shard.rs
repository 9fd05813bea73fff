//! One lock's share of the near cache: entries by key, a second-chance queue that evicts the
//! least recently used past the shard's share of `max_memory`, the generation numbers that
//! tell a fill whether its key changed since the read was sent, and the reads waiting for a
//! fill on its way.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use smallvec::SmallVec;

use super::entry::Known;

/// Bytes counted per entry beyond its key and data: the map's slot (key, entry and control
/// byte, at hashbrown's load of 7/8) and the queue's.
pub const OVERHEAD: usize =
    (std::mem::size_of::<(Key, Slot)>() + 1) * 8 / 7 + std::mem::size_of::<(Key, u64)>();

/// A fill not back by then (its client went away, say) no longer holds the key back.
const PENDING_MAX: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
pub struct Slot {
    /// Changes whenever the entry is made anew, so a fill sent before an invalidation
    /// cannot land on the entry made after it.
    pub gen: u64,
    pub known: Known,
    /// The key's TTL as of when the fill was sent (no later than the node's).
    pub expires: Option<Instant>,
    /// Read since the queue last passed it (second chance).
    pub used: bool,
    pub bytes: usize,
    /// The key's hash slot, so a topology change drops only the slots that moved.
    pub slot: u16,
}

/// foldhash: several times faster than SipHash on short keys (the hit path's largest cost,
/// perf), with a random seed per map, so clients cannot pick keys that collide.
type Map = HashMap<Key, Slot, foldhash::fast::RandomState>;

/// A key kept in the map's own slot when it is short (most keys are): comparing it then reads
/// no other memory, which was one of the hit path's cache misses (perf).
type Key = SmallVec<[u8; 24]>;

/// A key's bytes as held: the map and the eviction queue each keep a copy.
fn key_bytes(key: &[u8]) -> usize {
    2 * key.len()
}

/// What a read of a key may do about filling it.
#[derive(Debug, PartialEq)]
pub enum Begin {
    /// Send a fill that must find this generation.
    Fill(u64),
    /// A fill of this generation is on its way: the read may wait for it.
    InFlight(u64),
    /// Neither (the key is known too big to cache): the read goes as it is.
    No,
}

#[derive(Debug, Default)]
pub struct Shard {
    map: Map,
    order: VecDeque<(Key, u64)>,
    pub bytes: usize,
    next_gen: u64,
    /// The fills on their way that made a key's entry (by generation), with the reads
    /// waiting for them. An entry dropped meanwhile leaves its fill here: the reads that
    /// joined it before the drop still take its reply.
    waiting: HashMap<u64, Vec<super::Waiter>>,
}

impl Shard {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The live entry of `key`, marked used; an expired one counts as none (`begin` makes
    /// it anew). One map lookup: this runs for every cached read.
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Slot> {
        let s = self.map.get_mut(key)?;
        if s.expires.is_some_and(|t| t <= Instant::now()) {
            return None;
        }
        // Written only when it changes: a hot entry's line is then only read, and stays
        // shared between the cores that read it.
        if !s.used {
            s.used = true;
        }
        Some(s)
    }

    /// Whether a read of `key` should fill it: with a new `Pending` entry (or, for a hash
    /// known in part, the entry as it is), the generation the fill must find when its reply
    /// comes; or the fill already on its way, not twice the work on the node.
    pub fn begin(&mut self, key: &[u8], slot: u16) -> Begin {
        if let Some(s) = self.get(key) {
            let (gen, too_big, pending) =
                (s.gen, s.known == Known::TooBig, s.known == Known::Pending);
            return if too_big {
                Begin::No
            } else if !pending {
                Begin::Fill(gen)
            } else if self.waiting.contains_key(&gen) {
                // Only a fill that made the entry takes waiters (a hash's later fills share
                // its generation).
                Begin::InFlight(gen)
            } else {
                Begin::No
            };
        }
        // Expired (a fill that never came back ends too), or not there.
        self.remove(key);
        self.next_gen += 1;
        let gen = self.next_gen;
        let key = Key::from_slice(key);
        let bytes = key_bytes(&key) + OVERHEAD;
        self.bytes += bytes;
        self.order.push_back((key.clone(), gen));
        self.map.insert(
            key,
            Slot {
                gen,
                known: Known::Pending,
                expires: Some(Instant::now() + PENDING_MAX),
                used: false,
                bytes,
                slot,
            },
        );
        self.waiting.insert(gen, Vec::new());
        Begin::Fill(gen)
    }

    /// Adds a read to those waiting for fill `gen`; handed back when that fill is no longer on
    /// its way.
    pub fn join(&mut self, gen: u64, w: super::Waiter) -> Result<(), super::Waiter> {
        match self.waiting.get_mut(&gen) {
            Some(v) => {
                v.push(w);
                Ok(())
            }
            None => Err(w),
        }
    }

    /// Fill `gen` is back (or gone): the reads that waited for it.
    pub fn waiters(&mut self, gen: u64) -> Vec<super::Waiter> {
        self.waiting.remove(&gen).unwrap_or_default()
    }

    /// A fill that taught nothing (an error, a key changed between its read and its PTTL):
    /// its `Pending` entry goes, so the next read tries again.
    pub fn abandon(&mut self, key: &[u8], gen: u64) {
        if self
            .map
            .get(key)
            .is_some_and(|s| s.gen == gen && s.known == Known::Pending)
        {
            self.remove(key);
        }
    }

    /// A fill's reply: taken only when the entry is still the one the read was sent for.
    /// Past `max_value`, the key is marked too big instead.
    pub fn fill(
        &mut self,
        key: &[u8],
        gen: u64,
        known: Known,
        expires: Option<Instant>,
        max_value: usize,
    ) -> bool {
        let Some(s) = self.map.get_mut(key).filter(|s| s.gen == gen) else {
            return false;
        };
        let old = std::mem::replace(&mut s.known, Known::Pending);
        if old == Known::Pending {
            // The wait for the fill is over: only the key's own TTL (if any) applies now.
            s.expires = None;
        }
        let mut known = old.merge(known);
        if known.bytes() > max_value {
            known = Known::TooBig;
        }
        let bytes = key_bytes(key) + OVERHEAD + known.bytes();
        self.bytes = self.bytes - s.bytes + bytes;
        s.bytes = bytes;
        s.known = known;
        s.expires = match (s.expires, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        true
    }

    /// Drops `key`'s entry, or a fill on its way; whether there was one.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(s) => {
                self.bytes -= s.bytes;
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) -> usize {
        let n = self.map.len();
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
        n
    }

    /// Drops the entries of slots `moved` marks.
    pub fn drop_slots(&mut self, moved: &[bool]) {
        let before = self.bytes;
        let mut freed = 0;
        self.map.retain(|_, s| {
            let keep = !moved.get(s.slot as usize).copied().unwrap_or(false);
            if !keep {
                freed += s.bytes;
            }
            keep
        });
        self.bytes = before - freed;
    }

    /// Evicts entries until the shard holds at most `budget` bytes; how many went. An entry
    /// read since the queue last reached it goes to the back once (second chance).
    pub fn evict(&mut self, budget: usize) -> u64 {
        let mut evicted = 0;
        let mut passes = self.order.len();
        while self.bytes > budget {
            let Some((key, gen)) = self.order.pop_front() else {
                break;
            };
            let Some(s) = self.map.get_mut(&key).filter(|s| s.gen == gen) else {
                // Invalidated since: its entry is gone (or made anew, queued again).
                continue;
            };
            if s.used && passes > 0 {
                s.used = false;
                passes -= 1;
                self.order.push_back((key, gen));
                continue;
            }
            self.remove(&key);
            evicted += 1;
        }
        // Entries of keys dropped since are swept from time to time, so the queue stays
        // within a constant factor of the map.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|s| s.gen == *g));
        }
        evicted
    }
}
