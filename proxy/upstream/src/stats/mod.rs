//! What the backplane counts: redirects, retries, failures, topology refreshes and failover
//! events, and backend connections by node and state. Process-wide, touched once per event
//! (never per request); the proxy's reports read them.

pub mod backends;
pub mod events;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The one monotonic clock for request timings, so every reader agrees on its epoch.
pub fn clock() -> &'static quanta::Clock {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    /// Requests that waited for a migrating slot: TRYAGAIN, or an ASK a transaction must not
    /// follow.
    pub tryagain: AtomicU64,
    pub retries: AtomicU64,
    pub backend_failures: AtomicU64,
    pub topology_refreshes: AtomicU64,
    pub sentinel_events: AtomicU64,
    /// `__hive__:events` messages received, and the promotions they made the proxy follow.
    pub module_events: AtomicU64,
    pub failover_pushes: AtomicU64,
    /// Shared connections set aside (for new requests) while a large reply streams on them.
    pub large_reply_handoffs: AtomicU64,
    /// `write_ack = "replica"`: WAITs sent (one per batch holding writes), and writes refused
    /// with NOREPLICAS because too few replicas confirmed them.
    pub write_ack_waits: AtomicU64,
    pub write_ack_refused: AtomicU64,
    /// Backend connections per node and state.
    pub backends: backends::BackendStates,
}

impl UpstreamStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
