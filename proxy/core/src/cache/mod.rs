//! The near cache (`[cache]`, off by default): GET, MGET, HGET, HGETALL, EXISTS and STRLEN
//! answered from the proxy's memory. It stays fresh through the tracking feed (one
//! broadcast-tracking connection per master, `tracking::feed`): every change a master reports
//! drops its key, whoever made it. A write through this Hive drops its keys when it is sent
//! and again before its reply goes out, so a client reads its own writes. A read that fills
//! an entry carries the entry's generation; an invalidation in between ends the entry, so a
//! reply that raced one is never cached. While the feed is not up on every master, nothing is
//! served or filled. A GET of a key whose fill is on its way waits for that fill's reply
//! instead of going to the node (a hot key rewritten often is read from the node once per
//! write, not once per read); a read that waited before a write dropped the entry was sent
//! before that write was acknowledged, so the fill's reply is as good for it as any.

pub mod entry;
pub mod hot;
mod shard;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use hive_common::command::CommandTable;
use hive_common::resp::{write_integer, Request};
use hive_common::Slot;
use hive_upstream::{Inbox, ReplyTx};

use crate::config::{Admit, CacheConfig};
use entry::FillKind;
use shard::{Begin, Shard};

const SHARDS: usize = 16;

/// The reads the cache answers, by command id.
#[derive(Debug, Clone, Copy)]
struct Ids {
    get: u16,
    mget: u16,
    hget: u16,
    hgetall: u16,
    exists: u16,
    strlen: u16,
}

fn id(name: &str) -> u16 {
    CommandTable::get()
        .lookup(name.as_bytes())
        .map_or(u16::MAX, |s| s.id)
}

/// The single-key reads the cache answers.
#[derive(Clone, Copy)]
enum Read {
    Get,
    Strlen,
    Hgetall,
    Hget,
}

/// A read sent to fill an entry: the generation it must find when it comes back. Dropped
/// before its reply came (its client went away), it ends its `Pending` entry and sends the
/// reads that waited for it to the node.
pub struct Fill {
    pub key: Bytes,
    pub kind: FillKind,
    gen: u64,
    sent: Instant,
    cache: Arc<NearCache>,
    answered: bool,
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.answered {
            let waiters = {
                let mut s = self.cache.shard(&self.key);
                s.abandon(&self.key, self.gen);
                s.waiters(self.gen)
            };
            release(waiters, None);
        }
    }
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("gen", &self.gen)
            .finish()
    }
}

/// A GET waiting for another read's fill: where its reply goes.
pub struct Waiter {
    pub tx: ReplyTx,
    pub seq: u64,
    pub resp3: bool,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Waiter({})", self.seq)
    }
}

/// Each waiter's reply: GET's answer from what the fill taught (`known`, by protocol), or
/// `None` to send its read itself. A waiter whose client went away is skipped.
fn release(waiters: Vec<Waiter>, known: Option<&entry::Known>) {
    if waiters.is_empty() {
        return;
    }
    let replies = known.map(|k| [k.get(false), k.get(true)]);
    for w in waiters {
        let frame = replies
            .as_ref()
            .and_then(|r| r[usize::from(w.resp3)].clone());
        let _ = w.tx.send(Inbox::Joined { seq: w.seq, frame });
    }
}

/// What the cache makes of a read.
pub enum Lookup {
    /// Not a read it answers (or not now).
    Pass,
    Hit(Bytes),
    /// Sent to the node as `wire` (the read, then `PTTL key`: two replies), to fill an entry.
    Miss(Box<Fill>, Bytes),
    /// Not in the cache, and a fill of it is on its way already: sent as it is.
    Busy,
    /// A GET of a key whose fill (of this generation) is on its way: it may wait for it
    /// (`NearCache::join`).
    InFlight(u64),
}

pub struct NearCache {
    shards: Box<[Mutex<Shard>]>,
    budget: usize,
    patterns: Vec<Vec<u8>>,
    admit: Admit,
    max_value: usize,
    max_ttl: Option<Duration>,
    ids: Ids,
    /// The feed follows every master: what the cache holds is kept valid.
    ready: AtomicBool,
    /// `admit = "hot"`: the keys the sampler sees as hottest, refreshed each second.
    hot: ArcSwap<HashSet<Box<[u8]>>>,
    pub fills: AtomicU64,
    pub invalidations: AtomicU64,
    pub evictions: AtomicU64,
    pub flushes: AtomicU64,
}

impl NearCache {
    pub fn new(cfg: &CacheConfig) -> NearCache {
        NearCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            budget: cfg.max_memory.0 / SHARDS,
            patterns: cfg
                .key_patterns
                .iter()
                .map(|p| p.as_bytes().into())
                .collect(),
            admit: cfg.admit,
            max_value: cfg.max_value_bytes.0,
            max_ttl: (cfg.max_ttl_ms > 0).then(|| Duration::from_millis(cfg.max_ttl_ms)),
            ids: Ids {
                get: id("get"),
                mget: id("mget"),
                hget: id("hget"),
                hgetall: id("hgetall"),
                exists: id("exists"),
                strlen: id("strlen"),
            },
            ready: AtomicBool::new(false),
            hot: ArcSwap::default(),
            fills: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.shard_at(Slot::for_key(key))
    }

    /// The shard of a key in `slot`: the slot spreads keys evenly, and entries keep it anyway.
    fn shard_at(&self, slot: Slot) -> MutexGuard<'_, Shard> {
        self.shards[slot.index() % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether command `cmd` is one the cache answers (cheap: a few compares).
    pub fn answers(&self, cmd: u16) -> bool {
        let i = self.ids;
        [i.get, i.mget, i.hget, i.hgetall, i.exists, i.strlen].contains(&cmd)
    }

    fn wants(&self, key: &[u8]) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| hive_common::glob::glob_match(p, key))
    }

    /// Answers read `req` (command `cmd`) from the cache, or says how to fill it.
    pub fn lookup(self: &Arc<Self>, cmd: u16, req: &Request, resp3: bool) -> Lookup {
        self.lookup_into(cmd, req, resp3, &mut BytesMut::new())
    }

    /// `lookup`, with a GET hit's reply cut from `arena` (the connection's): a reply of its
    /// own was an allocation per hit, and frees in batches took malloc off its fast path (7%
    /// of the worker under perf, issue 29).
    pub fn lookup_into(
        self: &Arc<Self>,
        cmd: u16,
        req: &Request,
        resp3: bool,
        arena: &mut BytesMut,
    ) -> Lookup {
        if !self.ready.load(Ordering::Acquire) {
            return Lookup::Pass;
        }
        let i = self.ids;
        let argc = req.argc();
        if cmd == i.mget || cmd == i.exists {
            if argc < 2 {
                return Lookup::Pass;
            }
            let mut parts = Vec::with_capacity(argc - 1);
            let mut n = 0;
            for k in req.args().skip(1) {
                if !self.wants(k) {
                    return Lookup::Pass;
                }
                let mut s = self.shard(k);
                let Some(e) = s.get(k) else {
                    return Lookup::Pass;
                };
                if cmd == i.mget {
                    match e.known.mget(resp3) {
                        Some(b) => parts.push(b),
                        None => return Lookup::Pass,
                    }
                } else {
                    match e.known.exists() {
                        Some(true) => n += 1,
                        Some(false) => {}
                        None => return Lookup::Pass,
                    }
                }
            }
            if cmd == i.exists {
                let mut out = BytesMut::with_capacity(16);
                write_integer(&mut out, n);
                return Lookup::Hit(out.freeze());
            }
            return Lookup::Hit(entry::array(&parts));
        }
        let read = match cmd {
            c if c == i.get && argc == 2 => Read::Get,
            c if c == i.strlen && argc == 2 => Read::Strlen,
            c if c == i.hgetall && argc == 2 => Read::Hgetall,
            c if c == i.hget && argc == 3 => Read::Hget,
            _ => return Lookup::Pass,
        };
        let key = req.arg(1);
        if !self.wants(key) {
            return Lookup::Pass;
        }
        let slot = Slot::for_key(key);
        let mut s = self.shard_at(slot);
        if let Some(e) = s.get(key) {
            let hit = match read {
                Read::Get => e.known.get_into(resp3, arena),
                Read::Hgetall => e.known.hgetall(resp3),
                Read::Hget => e.known.hget(req.arg(2), resp3),
                Read::Strlen => e.known.strlen().map(|n| {
                    let mut out = BytesMut::with_capacity(16);
                    write_integer(&mut out, n as i64);
                    out.freeze()
                }),
            };
            if let Some(h) = hit {
                return Lookup::Hit(h);
            }
        }
        // A miss: what the fill needs is made only now, off the hit path.
        let kind = match read {
            Read::Get => FillKind::Get,
            Read::Hgetall => FillKind::Hgetall,
            Read::Hget => FillKind::Hget(req.arg_bytes(2)),
            Read::Strlen => return Lookup::Pass,
        };
        if self.admit == Admit::Hot && !self.hot.load().contains(key) && s.get(key).is_none() {
            return Lookup::Pass;
        }
        let gen = match s.begin(key, slot.get()) {
            Begin::Fill(gen) => gen,
            Begin::InFlight(gen) if matches!(read, Read::Get) => return Lookup::InFlight(gen),
            Begin::InFlight(_) | Begin::No => return Lookup::Busy,
        };
        let evicted = s.evict(self.budget);
        drop(s);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
        let mut wire = BytesMut::with_capacity(req.raw().len() + key.len() + 32);
        wire.extend_from_slice(req.raw());
        wire.extend_from_slice(b"*2\r\n$4\r\nPTTL\r\n");
        hive_common::resp::write_bulk(&mut wire, key);
        let fill = Fill {
            key: req.arg_bytes(1),
            kind,
            gen,
            sent: Instant::now(),
            cache: Arc::clone(self),
            answered: false,
        };
        Lookup::Miss(Box::new(fill), wire.freeze())
    }

    /// Makes GET `w` wait for fill `gen` of `key` (`Lookup::InFlight`); handed back if that
    /// fill is back already (the read then goes as it is).
    pub fn join(&self, key: &[u8], gen: u64, w: Waiter) -> Result<(), Waiter> {
        self.shard(key).join(gen, w)
    }

    /// A fill's reply (the read's, then PTTL's): what the cache learns is kept if the entry
    /// is still the one it was sent for; the read's own reply is returned for the client, and
    /// the reads that waited for it get theirs.
    pub fn fill(&self, f: &mut Fill, frame: &Bytes) -> Bytes {
        f.answered = true;
        let (reply, learned) = entry::split(frame, &f.kind);
        let Some((known, pttl)) = learned else {
            let waiters = {
                let mut s = self.shard(&f.key);
                s.abandon(&f.key, f.gen);
                s.waiters(f.gen)
            };
            release(waiters, None);
            return reply;
        };
        let mut expires = (pttl >= 0).then(|| f.sent + Duration::from_millis(pttl as u64));
        if let Some(max) = self.max_ttl {
            let cap = f.sent + max;
            expires = Some(expires.map_or(cap, |e| e.min(cap)));
        }
        let mut s = self.shard(&f.key);
        let waiters = s.waiters(f.gen);
        // Answered from what the fill taught before the entry takes it (cheap clones).
        let answers = (!waiters.is_empty()).then(|| known.clone());
        if s.fill(&f.key, f.gen, known, expires, self.max_value) {
            let evicted = s.evict(self.budget);
            drop(s);
            self.fills.fetch_add(1, Ordering::Relaxed);
            if evicted > 0 {
                self.evictions.fetch_add(evicted, Ordering::Relaxed);
            }
        } else {
            drop(s);
        }
        release(waiters, answers.as_ref());
        reply
    }

    /// Keys changed (reported by a master, or written through this Hive).
    pub fn invalidate<K: AsRef<[u8]>>(&self, keys: &[K]) {
        let mut n = 0;
        for k in keys {
            let k = k.as_ref();
            if self.shard(k).remove(k) {
                n += 1;
            }
        }
        if n > 0 {
            self.invalidations.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Everything goes (FLUSHALL, or the feed lost a master).
    pub fn flush(&self) {
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// The slots `moved` marks changed masters: their entries go.
    pub fn flush_slots(&self, moved: &[bool]) {
        for s in self.shards.iter() {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .drop_slots(moved);
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// The feed follows every master (`true`), or not any more: then everything goes, and
    /// nothing is served or filled until it is up again.
    pub fn set_ready(&self, up: bool) {
        self.ready.store(up, Ordering::Release);
        if !up {
            self.flush();
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn admits_hot(&self) -> bool {
        self.admit == Admit::Hot
    }

    /// `admit = "hot"`: the sampler's hottest keys now.
    pub fn set_hot(&self, keys: HashSet<Box<[u8]>>) {
        self.hot.store(Arc::new(keys));
    }

    /// (entries, bytes), for INFO and /metrics.
    pub fn counts(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            (n + s.len(), b + s.bytes)
        })
    }

    pub fn max_memory(&self) -> usize {
        self.budget * SHARDS
    }
}

#[cfg(test)]
mod tests;
