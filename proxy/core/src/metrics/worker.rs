//! Per-worker counters: each worker thread writes only its own (a plain load and store, no
//! locked instruction, no cache line shared with another writer); a scrape sums them all.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hive_common::command::CommandTable;

/// The clock request latencies are read from: the CPU's counter where it is usable (a few
/// instructions, calibrated once per process), else the monotonic clock. `std::time::Instant`
/// cost ~300 instructions per request at P1 (two reads and a subtraction), 3.8% of a GET.
pub use hive_upstream::stats::clock;

/// A counter with one writer. Reading from another thread sees a recent value.
#[derive(Debug, Default)]
pub struct Cell64(AtomicU64);

impl Cell64 {
    #[inline]
    pub fn add(&self, n: u64) {
        // Not `fetch_add`: only the owning thread writes, so a load and a store cannot lose an
        // update, and they cost no more than a plain memory increment.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    pub fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// The bucket a latency of `us` falls in (`BUCKETS_US.len()` for +Inf).
#[inline]
pub fn bucket(us: u64) -> usize {
    BUCKETS_US.partition_point(|&b| b < us)
}

/// Calls and latency of one command (or subcommand) on one worker.
#[derive(Debug, Default)]
pub struct CommandCounters {
    pub calls: Cell64,
    pub usec: Cell64,
    /// Not cumulative: `buckets[i]` counts latencies in `(BUCKETS_US[i-1], BUCKETS_US[i]]`.
    pub buckets: [Cell64; BUCKETS_US.len() + 1],
}

/// The error prefixes counted by name, as Redis's `errorstat_*`; the rest count as `other`.
pub const ERROR_CODES: [&str; 17] = [
    "ERR",
    "WRONGTYPE",
    "CROSSSLOT",
    "EXECABORT",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "LOADING",
    "READONLY",
    "NOSCRIPT",
    "BUSY",
    "OOM",
    "NOPROTO",
    "MASTERDOWN",
    "other",
];

/// The index in `ERROR_CODES` of an error reply's prefix.
pub fn error_code(frame: &[u8]) -> usize {
    let body = frame.get(1..).unwrap_or_default();
    let end = body
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(body.len());
    let code = &body[..end];
    ERROR_CODES[..ERROR_CODES.len() - 1]
        .iter()
        .position(|c| c.as_bytes() == code)
        .unwrap_or(ERROR_CODES.len() - 1)
}

/// One worker thread's counters.
#[derive(Debug)]
pub struct WorkerStats {
    /// Indexed by `CommandSpec::id`.
    pub commands: Box<[CommandCounters]>,
    pub errors: [Cell64; ERROR_CODES.len()],
    pub bytes_in: Cell64,
    pub bytes_out: Cell64,
    /// Requests slower than `proxy.slowlog_slower_than_us`.
    pub slow: Cell64,
    /// Reads sent to a replica.
    pub replica_reads: Cell64,
    /// Near-cache reads answered from memory, and those sent to fill it.
    pub cache_hits: Cell64,
    pub cache_misses: Cell64,
    /// Misses that waited for a fill already on its way instead of going to the node.
    pub cache_joined: Cell64,
    /// The sampled requests' keys and reply sizes.
    pub hotkeys: super::hotkeys::HotKeys,
}

impl WorkerStats {
    /// Near-cache (hits, misses, joined) over every worker, for INFO and /metrics.
    pub fn cache_reads(workers: &Workers) -> (u64, u64, u64) {
        let (mut hits, mut misses, mut joined) = (0, 0, 0);
        workers.each(|w| {
            hits += w.cache_hits.get();
            misses += w.cache_misses.get();
            joined += w.cache_joined.get();
        });
        (hits, misses, joined)
    }

    fn new() -> WorkerStats {
        WorkerStats {
            commands: (0..CommandTable::get().ids())
                .map(|_| CommandCounters::default())
                .collect(),
            errors: Default::default(),
            bytes_in: Cell64::default(),
            bytes_out: Cell64::default(),
            slow: Cell64::default(),
            replica_reads: Cell64::default(),
            cache_hits: Cell64::default(),
            cache_misses: Cell64::default(),
            cache_joined: Cell64::default(),
            hotkeys: Default::default(),
        }
    }

    /// Counts one reply to command `id`, `us` microseconds after its request was decoded.
    #[inline]
    pub fn record(&self, id: u16, us: u64) {
        if let Some(c) = self.commands.get(id as usize) {
            c.calls.add(1);
            c.usec.add(us);
            c.buckets[bucket(us)].add(1);
        }
    }

    /// Counts a call of command `id` run inside EXEC (its time is EXEC's, counted there).
    pub fn count(&self, id: u16) {
        if let Some(c) = self.commands.get(id as usize) {
            c.calls.add(1);
        }
    }

    /// CONFIG RESETSTAT: zeroes the per-command counters.
    pub fn reset(&self) {
        for c in self.commands.iter() {
            c.calls.reset();
            c.usec.reset();
            c.buckets.iter().for_each(Cell64::reset);
        }
        self.errors.iter().for_each(Cell64::reset);
    }
}

/// Every worker's counters of one proxy.
#[derive(Debug, Default)]
pub struct Workers {
    all: Mutex<Vec<Arc<WorkerStats>>>,
}

thread_local! {
    /// This thread's counters, with the `Workers` they belong to (tests run several proxies in
    /// one process, each with threads of its own, but check anyway).
    static CURRENT: RefCell<Option<(usize, Arc<WorkerStats>)>> = const { RefCell::new(None) };
}

impl Workers {
    /// The calling thread's counters, created on first use (once per client connection).
    pub fn current(&self) -> Arc<WorkerStats> {
        let me = self as *const Workers as usize;
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((owner, w)) = c.as_ref() {
                if *owner == me {
                    return w.clone();
                }
            }
            let w = Arc::new(WorkerStats::new());
            self.all
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(w.clone());
            *c = Some((me, w.clone()));
            w
        })
    }

    /// A snapshot of every worker's counters, for a scrape or INFO.
    pub fn each<F: FnMut(&WorkerStats)>(&self, mut f: F) {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner()).clone();
        all.iter().for_each(|w| f(w));
    }

    /// Every worker's counters, for a reader that keeps them across calls.
    pub fn all(&self) -> Vec<Arc<WorkerStats>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sums of one value over every worker.
    pub fn sum<F: Fn(&WorkerStats) -> u64>(&self, f: F) -> u64 {
        let mut total = 0;
        self.each(|w| total += f(w));
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_inclusive() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(50), 0);
        assert_eq!(bucket(51), 1);
        assert_eq!(bucket(5_000_000), BUCKETS_US.len() - 1);
        assert_eq!(bucket(5_000_001), BUCKETS_US.len());
    }

    #[test]
    fn error_code_names_the_prefix() {
        assert_eq!(
            ERROR_CODES[error_code(b"-WRONGTYPE Operation\r\n")],
            "WRONGTYPE"
        );
        assert_eq!(ERROR_CODES[error_code(b"-ERR x\r\n")], "ERR");
        assert_eq!(ERROR_CODES[error_code(b"-WEIRD\r\n")], "other");
        assert_eq!(ERROR_CODES[error_code(b"-")], "other");
    }

    #[test]
    fn workers_sum_every_thread() {
        let workers = Arc::new(Workers::default());
        workers.current().record(3, 10);
        let w2 = workers.clone();
        std::thread::spawn(move || w2.current().record(3, 2_000))
            .join()
            .unwrap();
        assert_eq!(workers.sum(|w| w.commands[3].calls.get()), 2);
        assert_eq!(workers.sum(|w| w.commands[3].usec.get()), 2_010);
        assert_eq!(workers.sum(|w| w.commands[3].buckets[0].get()), 1);
        // The same thread gets the same counters back.
        assert!(Arc::ptr_eq(&workers.current(), &workers.current()));
    }
}
