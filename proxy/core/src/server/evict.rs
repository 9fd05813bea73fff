//! `proxy.maxmemory_buffers`: every 100 ms, the clients' buffer bytes (each client publishes
//! its own once per batch) are summed; past the limit the clients holding the most are
//! disconnected first, until the rest fit, as Redis's client eviction (`maxmemory-clients`)
//! does. The sum is also INFO's `client_buffers_bytes`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::metrics::Stats;
use crate::state::Shared;
use hive_upstream::stop::Stop;

const EVERY: Duration = Duration::from_millis(100);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let limit = shared.live.load().proxy.maxmemory_buffers.0;
        let mut clients: Vec<(usize, _)> = shared
            .clients
            .all()
            .into_iter()
            .map(|c| (c.buffers.load(Ordering::Relaxed), c))
            .collect();
        let mut total: usize = clients.iter().map(|(b, _)| b).sum();
        shared
            .stats
            .client_buffers
            .store(total as u64, Ordering::Relaxed);
        if limit == 0 || total <= limit {
            continue;
        }
        clients.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        for (bytes, c) in clients {
            if total <= limit || bytes == 0 {
                break;
            }
            warn!(
                client = c.id,
                addr = %c.peer,
                bytes,
                total,
                "evicting client: buffers over proxy.maxmemory_buffers"
            );
            c.signal.raise(Stop::Kill);
            Stats::add(&shared.stats.evicted_clients, 1);
            total -= bytes;
        }
    }
}
