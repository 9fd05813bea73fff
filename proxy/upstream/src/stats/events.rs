//! Rare events worth a histogram: requests held through a failover, and how long a failover
//! took from the proxy's first sign of it to the first request that succeeded on the new
//! master. Touched only on those paths, so shared atomics and a lock are fine here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the event buckets, in seconds (the last bucket is +Inf).
pub const BUCKETS_S: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct EventHistogram {
    pub buckets: [AtomicU64; BUCKETS_S.len() + 1],
    pub count: AtomicU64,
    pub sum_us: AtomicU64,
}

impl EventHistogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS_S.partition_point(|&b| b < s);
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Cumulative counts per bucket bound, then the sum in seconds and the count.
    pub fn cumulative(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(BUCKETS_S.len());
        for (i, b) in BUCKETS_S.iter().enumerate() {
            acc += self.buckets[i].load(Relaxed);
            out.push((*b, acc));
        }
        let count = self.count.load(Relaxed);
        (out, self.sum_us.load(Relaxed) as f64 / 1e6, count)
    }
}

/// Per shard: when requests first had to wait, and whether its master has changed since.
#[derive(Debug, Default)]
pub struct FailoverClock {
    shards: Mutex<HashMap<usize, (Instant, bool)>>,
    pub followed: AtomicU64,
    pub recovery: EventHistogram,
}

impl FailoverClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, (Instant, bool)>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request to shard `i` started waiting at `since`.
    pub fn trouble(&self, i: usize, since: Instant) {
        self.lock().entry(i).or_insert((since, false));
    }

    /// The topology gave shard `i` a new master.
    pub fn master_changed(&self, i: usize) {
        self.followed.fetch_add(1, Relaxed);
        if let Some(e) = self.lock().get_mut(&i) {
            e.1 = true;
        }
    }

    /// A request to shard `i` that had waited succeeded: the failover is over, if there was one.
    pub fn recovered(&self, i: usize) {
        let mut s = self.lock();
        if let Some((since, changed)) = s.remove(&i) {
            if changed {
                self.recovery.observe(since.elapsed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_clock_times_only_real_master_changes() {
        let c = FailoverClock::default();
        c.trouble(0, Instant::now());
        c.recovered(0);
        assert_eq!(c.recovery.count.load(Relaxed), 0);
        c.trouble(1, Instant::now() - Duration::from_millis(300));
        c.master_changed(1);
        c.recovered(1);
        let (buckets, sum, count) = c.recovery.cumulative();
        assert_eq!(count, 1);
        assert!(sum >= 0.3);
        assert_eq!(buckets[5], (0.25, 0));
        assert_eq!(buckets[6], (0.5, 1));
    }
}
