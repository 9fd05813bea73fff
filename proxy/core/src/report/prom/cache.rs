//! The near cache in `/metrics`: hits, misses (and those that waited for a fill on its way),
//! fills, invalidations, evictions, flushes, and
//! what it holds against `cache.max_memory`.

use super::Families;
use crate::state::Shared;

pub(super) fn metrics(shared: &Shared, f: &mut Families) {
    let Some(c) = &shared.cache else { return };
    let s = &shared.stats;
    let (hits, misses, joined) = crate::metrics::worker::WorkerStats::cache_reads(&s.workers);
    let (keys, bytes) = c.counts();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, v) in [
        (
            "hive_cache_hits_total",
            "Reads answered from the near cache.",
            hits,
        ),
        (
            "hive_cache_misses_total",
            "Reads sent to a node to fill the near cache.",
            misses,
        ),
        (
            "hive_cache_joined_total",
            "Misses that waited for a fill already on its way instead of going to a node.",
            joined,
        ),
        (
            "hive_cache_fills_total",
            "Entries the near cache took from a node's reply.",
            load(&c.fills),
        ),
        (
            "hive_cache_invalidations_total",
            "Entries dropped because their key changed (on any node, or through this Hive).",
            load(&c.invalidations),
        ),
        (
            "hive_cache_evictions_total",
            "Entries evicted to stay within cache.max_memory.",
            load(&c.evictions),
        ),
        (
            "hive_cache_flushes_total",
            "Times the near cache was emptied, whole or by slot (FLUSHALL, a failover, a lost feed, a slot moved).",
            load(&c.flushes),
        ),
    ] {
        f.counter(name, help, &[], v as f64);
    }
    f.gauge(
        "hive_cache_keys",
        "Entries in the near cache.",
        &[],
        keys as f64,
    );
    f.gauge(
        "hive_cache_bytes",
        "Bytes the near cache holds (keys, values and bookkeeping).",
        &[],
        bytes as f64,
    );
    f.gauge(
        "hive_cache_max_bytes",
        "cache.max_memory.",
        &[],
        c.max_memory() as f64,
    );
    f.gauge(
        "hive_cache_ready",
        "1 while the tracking feed follows every master, so the near cache serves.",
        &[],
        if c.is_ready() { 1.0 } else { 0.0 },
    );
}
