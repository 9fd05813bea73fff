//! Redis's client-side caching through Hive (CLIENT TRACKING). Hive keeps, as Redis does per
//! node, which client read which key (`Tracker`); it learns of every change on every master
//! from one broadcast-tracking connection per master (`feed`), whoever made the change: a
//! client of this Hive, of another, or of the node itself; and it sends each client the
//! invalidations Redis would (`frames`). When the masters change, or a feed connection is lost,
//! no node knows what Hive's clients cached: every tracking client is sent a flush.

pub mod feed;
pub mod frames;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use hive_upstream::{Inbox, ReplyTx};
use smallvec::SmallVec;
use tokio::sync::Notify;

/// How a tracking client wants its invalidations.
#[derive(Debug, Clone)]
pub struct Client {
    pub tx: ReplyTx,
    pub resp3: bool,
    /// REDIRECT: the client id that receives them instead.
    pub redirect: Option<u64>,
    /// BCAST: the prefixes (none: every key); `None` in the default mode.
    pub bcast: Option<Vec<Bytes>>,
}

/// A connection subscribed to `__redis__:invalidate`, which REDIRECT may name.
struct Sink {
    tx: ReplyTx,
    resp3: bool,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<u64, Client>,
    sinks: HashMap<u64, Sink>,
    /// Default mode: the clients that read each key since its last invalidation.
    keys: HashMap<Bytes, SmallVec<[u64; 2]>>,
    /// Keys in the order they entered `keys`, for eviction past the bound (entries of keys
    /// invalidated since are skipped).
    order: VecDeque<Bytes>,
    /// A tracking client read something since the last flush: a flush now has something to
    /// clear (every master reports a FLUSHALL; the clients are told once, as by Redis).
    read_since_flush: bool,
}

pub struct Tracker {
    inner: Mutex<Inner>,
    /// Tracking clients: the feed runs while there is one.
    clients: AtomicUsize,
    max_keys: usize,
    /// Wakes the feed when the first client starts tracking.
    pub wake: Notify,
    pub invalidations: AtomicU64,
    pub evictions: AtomicU64,
    pub flushes: AtomicU64,
}

impl Tracker {
    /// `max_keys`: `proxy.tracking_table_max_keys` (0: no bound, as in Redis).
    pub fn new(max_keys: usize) -> Tracker {
        Tracker {
            inner: Mutex::default(),
            clients: AtomicUsize::new(0),
            max_keys,
            wake: Notify::new(),
            invalidations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether some client tracks (the feed is needed).
    pub fn active(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 0
    }

    /// (tracking clients, keys in the table), for INFO and /metrics.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.lock();
        (g.clients.len(), g.keys.len())
    }

    /// CLIENT TRACKING ON (again, with new options).
    pub fn enable(&self, id: u64, c: Client) {
        let mut g = self.lock();
        g.clients.insert(id, c);
        // It may have read before: a flush must reach it.
        g.read_since_flush = true;
        self.clients.store(g.clients.len(), Ordering::Relaxed);
        drop(g);
        self.wake.notify_one();
    }

    /// CLIENT TRACKING OFF, or the connection closed. Its keys stay in the table until they
    /// are invalidated, as in Redis; nothing is sent to it meanwhile.
    pub fn disable(&self, id: u64) {
        let mut g = self.lock();
        g.clients.remove(&id);
        self.clients.store(g.clients.len(), Ordering::Relaxed);
    }

    /// A connection subscribed to `__redis__:invalidate` (a REDIRECT target), or not any more.
    pub fn sink(&self, id: u64, tx: Option<(ReplyTx, bool)>) {
        let mut g = self.lock();
        match tx {
            Some((tx, resp3)) => g.sinks.insert(id, Sink { tx, resp3 }),
            None => g.sinks.remove(&id),
        };
    }

    /// Default mode: client `id` read `keys`. Past the bound, the oldest keys are evicted and
    /// their readers told, as Redis does.
    pub fn track<'a>(&self, id: u64, keys: impl Iterator<Item = &'a [u8]>) {
        let mut g = self.lock();
        g.read_since_flush = true;
        for k in keys {
            match g.keys.get_mut(k) {
                Some(ids) => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                None => {
                    let k = Bytes::copy_from_slice(k);
                    g.order.push_back(k.clone());
                    g.keys.insert(k, SmallVec::from_elem(id, 1));
                }
            }
        }
        while self.max_keys > 0 && g.keys.len() > self.max_keys {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some(ids) = g.keys.remove(&old) {
                self.evictions.fetch_add(1, Ordering::Relaxed);
                deliver_key(&g, &old, &ids, &self.invalidations);
            }
        }
        // Entries of keys invalidated since are dropped from time to time, so the queue
        // stays within a constant factor of the table.
        if g.order.len() > 2 * g.keys.len() + 1024 {
            let Inner { keys, order, .. } = &mut *g;
            order.retain(|k| keys.contains_key(k));
        }
    }

    /// A broadcast client read: a flush from now on has something to clear.
    pub fn read_by_bcast(&self) {
        self.lock().read_since_flush = true;
    }

    /// Client `id` writes `key` through Hive: whether it had read it (it is told before the
    /// write's reply, as Redis tells it); it is no longer tracking the key either way. The
    /// other readers are told by the feed.
    pub fn written_by(&self, id: u64, key: &[u8]) -> bool {
        let mut g = self.lock();
        let Some(ids) = g.keys.get_mut(key) else {
            return false;
        };
        let Some(at) = ids.iter().position(|&i| i == id) else {
            return false;
        };
        ids.swap_remove(at);
        if ids.is_empty() {
            g.keys.remove(key);
        }
        true
    }

    /// Keys a master reports changed: every client that read one is told (and must read it
    /// again to be told again), and every broadcast client whose prefix matches.
    pub fn invalidate(&self, keys: &[Bytes]) {
        let mut g = self.lock();
        for k in keys {
            if let Some(ids) = g.keys.remove(k) {
                deliver_key(&g, k, &ids, &self.invalidations);
            }
        }
        for c in g.clients.values() {
            let Some(prefixes) = &c.bcast else { continue };
            if prefixes.is_empty() {
                send(&g, c, Some(keys), &self.invalidations);
                continue;
            }
            for p in prefixes {
                let matched: Vec<Bytes> =
                    keys.iter().filter(|k| k.starts_with(p)).cloned().collect();
                if !matched.is_empty() {
                    send(&g, c, Some(&matched), &self.invalidations);
                }
            }
        }
    }

    /// No node knows what the clients cached any more (the masters changed, a feed was lost):
    /// every tracking client is sent a flush and the table is emptied.
    pub fn flush(&self) {
        let mut g = self.lock();
        if !g.read_since_flush {
            return;
        }
        g.read_since_flush = false;
        g.keys.clear();
        g.order.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        for c in g.clients.values() {
            send(&g, c, None, &self.invalidations);
        }
    }
}

/// Tells the clients `ids` (those still tracking) that `key` changed.
fn deliver_key(g: &Inner, key: &Bytes, ids: &[u64], n: &AtomicU64) {
    let one = std::slice::from_ref(key);
    for id in ids {
        if let Some(c) = g.clients.get(id).filter(|c| c.bcast.is_none()) {
            send(g, c, Some(one), n);
        }
    }
}

/// One invalidation (`None`: a flush) to client `c`, or to the connection it redirects to.
fn send(g: &Inner, c: &Client, keys: Option<&[Bytes]>, n: &AtomicU64) {
    n.fetch_add(1, Ordering::Relaxed);
    match c.redirect {
        None if c.resp3 => {
            let _ = c.tx.send(Inbox::Invalidate {
                frame: frames::invalidate(keys, true),
            });
        }
        // RESP2 without a redirect: nowhere to send it, as in Redis.
        None => {}
        Some(to) => match g.sinks.get(&to) {
            Some(s) => {
                let _ = s.tx.send(Inbox::Invalidate {
                    frame: frames::invalidate(keys, s.resp3),
                });
            }
            None if c.resp3 => {
                let _ = c.tx.send(Inbox::Invalidate {
                    frame: frames::redirect_broken(to),
                });
            }
            None => {}
        },
    }
}

#[cfg(test)]
mod tests;
