//! The near cache (`[cache]`): replies from the cache frame by frame as one redis-server gives
//! them (`replies`); no read older than the last write acknowledged before it was sent, with
//! writes through Hive and the bound measured with writes made on the node (`consistency`);
//! TTLs, `max_memory`, big values, failovers and access rules (`limits`); reads of a key
//! being filled wait for that fill (`coalesce`); the INFO counters and CONFIG RESETSTAT
//! (`counters`).

use std::time::Duration;

use hive_proxy::config::{Admit, Config};

mod coalesce;
mod consistency;
mod counters;
mod limits;
mod replies;

/// `[cache]` on, admitting every key.
pub(super) fn on(c: &mut Config) {
    c.cache.enabled = true;
    c.cache.admit = Admit::All;
}

/// Waits until the cache serves (the tracking feed follows every master).
pub(super) fn ready(c: &mut redis::Connection) {
    hive_tests::module_cluster::wait_for("the near cache", Duration::from_secs(15), || {
        hive_tests::info_u64(c, "cache_ready") == 1
    });
}

pub(super) fn hits(c: &mut redis::Connection) -> u64 {
    hive_tests::info_u64(c, "cache_hits")
}
