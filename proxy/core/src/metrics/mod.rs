//! Process-wide counters; clients add to them once per batch, not per request, and count
//! per request only in their own worker's counters (`worker`). `report` renders them.

pub use hive_upstream::stats::{backends, events};
pub mod hotkeys;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hive_upstream::stats::UpstreamStats;
use std::time::Instant;

#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub connections_received: AtomicU64,
    pub connected_clients: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub error_replies: AtomicU64,
    /// Client tasks that panicked (each closed its connection only).
    pub client_panics: AtomicU64,
    /// TLS clients whose handshake failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Clients closed at `client_output_buffer_limit`, `client_query_buffer_limit`, and by
    /// `maxmemory_buffers`.
    pub output_limit_disconnects: AtomicU64,
    pub query_limit_disconnects: AtomicU64,
    pub evicted_clients: AtomicU64,
    /// Requests sent over a client's own connection because they, or its replies, are large.
    pub large_requests: AtomicU64,
    /// Buffer bytes held by all clients, as of the last check (`maxmemory_buffers`).
    pub client_buffers: AtomicU64,
    /// Clients refused at AUTH/HELLO (wrong password, unknown or disabled user).
    pub auth_failures: AtomicU64,
    /// Clients whose next request waits for CLIENT PAUSE to end (INFO's `blocked_clients`).
    pub paused_clients: AtomicU64,
    /// INFO's counters as of the last CONFIG RESETSTAT (`report::info`).
    pub info_base: std::sync::Mutex<Vec<(&'static str, u64)>>,
    /// Per worker: commands, latency, errors by prefix, bytes.
    pub workers: worker::Workers,
    /// How long requests waited for a shard to get a writable master.
    pub held: events::EventHistogram,
    /// What the backplane counts (redirects, failures, failover events, connections).
    pub upstream: Arc<UpstreamStats>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            connections_received: AtomicU64::new(0),
            connected_clients: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            client_panics: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            output_limit_disconnects: AtomicU64::new(0),
            query_limit_disconnects: AtomicU64::new(0),
            evicted_clients: AtomicU64::new(0),
            large_requests: AtomicU64::new(0),
            client_buffers: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            paused_clients: AtomicU64::new(0),
            info_base: std::sync::Mutex::default(),
            workers: worker::Workers::default(),
            held: events::EventHistogram::default(),
            upstream: Arc::default(),
        }
    }
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
