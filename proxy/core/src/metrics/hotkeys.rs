//! Hot and big keys from a sample of requests: each connection counts down to its next sample
//! (no shared state per request); a sampled request's first key and reply size go into its
//! worker's tables (space-saving top-K by count, top-K by reply bytes), which INFO hotkeys,
//! /metrics and `hive top` merge when they read them. Costs the nodes nothing, unlike
//! `redis-cli --hotkeys` (an LFU policy and a full SCAN).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys each worker's tables hold: the space-saving error of a count is at most the smallest
/// count in the table, so hot keys (far above it) are exact enough.
pub const CAPACITY: usize = 64;
/// Bytes of a key kept: a longer key is counted under its first `KEY_MAX` bytes.
pub const KEY_MAX: usize = 128;
/// Rates cover the last full window and the current one.
pub const WINDOW: Duration = Duration::from_secs(10);

/// A connection's countdown to its next sample (1 in `every`; 0: off).
#[derive(Debug, Clone, Copy)]
pub struct Countdown {
    every: u32,
    left: u32,
}

impl Countdown {
    pub fn new(every: u32) -> Countdown {
        // Connections start at different points, so short-lived clients are sampled too.
        let left = if every == 0 {
            0
        } else {
            1 + rand::random::<u32>() % every
        };
        Countdown { every, left }
    }

    /// Whether this request is sampled.
    #[inline]
    pub fn tick(&mut self) -> bool {
        if self.every == 0 {
            return false;
        }
        self.left -= 1;
        if self.left == 0 {
            self.left = self.every;
            true
        } else {
            false
        }
    }

    pub fn every(&self) -> u32 {
        self.every
    }
}

/// Keys with a count or a size.
type PerKey = Vec<(Box<[u8]>, u64)>;

/// A key in a table, with its hash: the scans compare hashes and only compare the bytes of
/// a match (comparing bytes first was 5,700 instructions a sample, callgrind).
#[derive(Debug, Clone)]
struct Entry {
    hash: u64,
    key: Box<[u8]>,
    /// Hot: the requests it stands for (each sample weighs its sampling rate). Big: the largest
    /// reply seen for it, in bytes.
    n: u64,
}

#[derive(Debug, Clone, Default)]
struct Gen {
    hot: Vec<Entry>,
    big: Vec<Entry>,
}

fn find<'a>(t: &'a mut [Entry], hash: u64, key: &[u8]) -> Option<&'a mut Entry> {
    t.iter_mut().find(|e| e.hash == hash && &*e.key == key)
}

impl Gen {
    fn count(&mut self, hash: u64, key: &[u8], weight: u64) {
        if let Some(e) = find(&mut self.hot, hash, key) {
            e.n += weight;
        } else if self.hot.len() < CAPACITY {
            let key = key.into();
            self.hot.push(Entry {
                hash,
                key,
                n: weight,
            });
        } else if let Some(min) = self.hot.iter_mut().min_by_key(|e| e.n) {
            // Space-saving: the newcomer inherits the smallest count, as its upper bound.
            let key = key.into();
            *min = Entry {
                hash,
                key,
                n: min.n + weight,
            };
        }
    }

    fn size(&mut self, hash: u64, key: &[u8], bytes: u64) {
        if let Some(e) = find(&mut self.big, hash, key) {
            e.n = e.n.max(bytes);
        } else if self.big.len() < CAPACITY {
            let key = key.into();
            self.big.push(Entry {
                hash,
                key,
                n: bytes,
            });
        } else if let Some(min) = self.big.iter_mut().min_by_key(|e| e.n) {
            if bytes > min.n {
                let key = key.into();
                *min = Entry {
                    hash,
                    key,
                    n: bytes,
                };
            }
        }
    }
}

#[derive(Debug)]
struct Tables {
    start: Instant,
    cur: Gen,
    /// The last full window, and how long it lasted.
    prev: Option<(Duration, Gen)>,
}

/// One worker's tables. Locked only by a sampled request of that worker and by a reader.
#[derive(Debug)]
pub struct HotKeys {
    tables: Mutex<Tables>,
}

impl Default for HotKeys {
    fn default() -> Self {
        HotKeys {
            tables: Mutex::new(Tables {
                start: Instant::now(),
                cur: Gen::default(),
                prev: None,
            }),
        }
    }
}

/// A key's merged figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Hot {
    pub key: Vec<u8>,
    /// Estimated requests per second (samples, each weighing its sampling rate, ÷ the span).
    pub ops_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Big {
    pub key: Vec<u8>,
    pub reply_bytes: u64,
}

impl HotKeys {
    /// Records one sampled request for `key` whose reply was `bytes` long, standing for
    /// `weight` requests (the sampling rate it was taken at).
    pub fn sample(&self, key: &[u8], bytes: usize, weight: u32) {
        let key = &key[..key.len().min(KEY_MAX)];
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let age = now.saturating_duration_since(t.start);
        if age >= WINDOW {
            let done = std::mem::take(&mut t.cur);
            // A window with no sample after it for long is not "the last" one.
            t.prev = (age < WINDOW * 2).then_some((age, done));
            t.start = now;
        }
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            h.finish()
        };
        t.cur.count(hash, key, weight as u64);
        t.cur.size(hash, key, bytes as u64);
    }

    /// This worker's samples per key and the span they cover, and its biggest replies.
    fn read(&self, now: Instant) -> (Duration, PerKey, PerKey) {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let age = now.saturating_duration_since(t.start);
        let mut counts: HashMap<Box<[u8]>, u64> = HashMap::new();
        let mut big: HashMap<Box<[u8]>, u64> = HashMap::new();
        let mut span = age;
        let mut gens = vec![&t.cur];
        if age >= WINDOW * 2 {
            // Nothing sampled for two windows: nothing of it is current.
            return (age, Vec::new(), Vec::new());
        }
        if age < WINDOW {
            if let Some((d, g)) = &t.prev {
                span += *d;
                gens.push(g);
            }
        }
        for g in gens {
            for e in &g.hot {
                *counts.entry(e.key.clone()).or_default() += e.n;
            }
            for e in &g.big {
                let b = big.entry(e.key.clone()).or_default();
                *b = (*b).max(e.n);
            }
        }
        (
            span,
            counts.into_iter().collect(),
            big.into_iter().collect(),
        )
    }
}

/// Merges every worker's tables: the `top` hottest keys by ops/s and the `top` biggest replies.
pub fn merge<'a>(workers: impl Iterator<Item = &'a HotKeys>, top: usize) -> (Vec<Hot>, Vec<Big>) {
    let now = Instant::now();
    let mut rates: HashMap<Box<[u8]>, f64> = HashMap::new();
    let mut big: HashMap<Box<[u8]>, u64> = HashMap::new();
    for w in workers {
        let (span, counts, sizes) = w.read(now);
        // At least a second, so a window just begun does not inflate its few samples.
        let secs = span.as_secs_f64().max(1.0);
        for (k, n) in counts {
            *rates.entry(k).or_default() += n as f64 / secs;
        }
        for (k, b) in sizes {
            let e = big.entry(k).or_default();
            *e = (*e).max(b);
        }
    }
    let mut hot: Vec<Hot> = rates
        .into_iter()
        .map(|(k, r)| Hot {
            key: k.into(),
            ops_per_sec: r,
        })
        .collect();
    hot.sort_by(|a, b| {
        b.ops_per_sec
            .total_cmp(&a.ops_per_sec)
            .then(a.key.cmp(&b.key))
    });
    hot.truncate(top);
    let mut big: Vec<Big> = big
        .into_iter()
        .map(|(k, b)| Big {
            key: k.into(),
            reply_bytes: b,
        })
        .collect();
    big.sort_by(|a, b| b.reply_bytes.cmp(&a.reply_bytes).then(a.key.cmp(&b.key)));
    big.truncate(top);
    (hot, big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_samples_one_in_every() {
        let mut c = Countdown::new(10);
        let n = (0..1000).filter(|_| c.tick()).count();
        assert_eq!(n, 100);
        let mut off = Countdown::new(0);
        assert!((0..1000).all(|_| !off.tick()));
    }

    #[test]
    fn hotkeys_space_saving_keeps_the_heavy_hitters() {
        let h = HotKeys::default();
        // Two hot keys among 10,000 cold ones, interleaved.
        for i in 0..10_000u32 {
            h.sample(format!("cold:{i}").as_bytes(), 10, 1);
            if i % 4 == 0 {
                h.sample(b"hot:a", 10, 1);
            }
            if i % 10 == 0 {
                h.sample(b"hot:b", 5000, 1);
            }
        }
        let (hot, big) = merge([&h].into_iter(), 2);
        assert_eq!(hot[0].key, b"hot:a");
        assert_eq!(hot[1].key, b"hot:b");
        // Never the table's smallest, so counted exactly (the span rounds up to a second).
        assert_eq!(hot[0].ops_per_sec, 2500.0, "{hot:?}");
        assert_eq!(hot[1].ops_per_sec, 1000.0, "{hot:?}");
        assert_eq!(big[0].key, b"hot:b");
        assert_eq!(big[0].reply_bytes, 5000);
    }

    #[test]
    fn hotkeys_merge_sums_workers_and_bounds_keys() {
        let (a, b) = (HotKeys::default(), HotKeys::default());
        for _ in 0..30 {
            a.sample(b"k", 1, 100);
            b.sample(b"k", 1, 100);
        }
        b.sample(b"other", 1, 100);
        let long = vec![b'x'; 10_000];
        a.sample(&long, 10_000, 100);
        let (hot, big) = merge([&a, &b].into_iter(), 10);
        assert_eq!(hot[0].key, b"k");
        // 60 samples of 1 in 100 within the first second: 6,000/s.
        assert_eq!(hot[0].ops_per_sec, 6000.0);
        assert_eq!(big[0].key.len(), KEY_MAX);
        assert!(a.tables.lock().unwrap().cur.hot.len() <= CAPACITY);
    }
}
