//! `admit = "hot"`: once a second, the keys the hot-key sampler counts among the hottest
//! (every worker's tables merged) become the keys a miss may bring into the near cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::NearCache;
use crate::metrics::hotkeys::merge;
use crate::metrics::Stats;

/// Keys admitted at most: the sampler's tables hold 64 keys per worker.
pub const HOT_KEYS: usize = 256;

/// The hottest keys now.
pub fn hottest(stats: &Stats) -> HashSet<Box<[u8]>> {
    let workers = stats.workers.all();
    let (hot, _) = merge(workers.iter().map(|w| &w.hotkeys), HOT_KEYS);
    hot.into_iter().map(|h| h.key.into_boxed_slice()).collect()
}

/// Refreshes the admitted keys each second until shutdown.
pub async fn run(cache: Arc<NearCache>, stats: Arc<Stats>, mut shutdown: watch::Receiver<bool>) {
    if !cache.admits_hot() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => cache.set_hot(hottest(&stats)),
            _ = shutdown.changed() => return,
        }
    }
}
