//! Replicas in `/metrics`: reads sent to replicas, which replicas are readable and their lag as
//! the read policy judged them, hive-module events, and writes confirmed by replicas
//! (`write_ack = "replica"`).

use super::Families;
use crate::metrics::Stats;
use crate::state::Shared;

pub(super) fn metrics(shared: &Shared, f: &mut Families) {
    let s = &shared.stats;
    let mut reads = 0;
    s.workers.each(|w| reads += w.replica_reads.get());
    f.counter(
        "hive_replica_reads_total",
        "Reads sent to replicas (backend.read_from, READONLY).",
        &[],
        reads as f64,
    );
    f.counter(
        "hive_module_events_total",
        "hive-module events (__hive__:events) received.",
        &[],
        Stats::get(&s.upstream.module_events) as f64,
    );
    f.counter(
        "hive_failover_pushes_total",
        "Promotions followed as soon as hive-module reported them.",
        &[],
        Stats::get(&s.upstream.failover_pushes) as f64,
    );
    f.counter(
        "hive_write_ack_waits_total",
        "WAITs sent to confirm writes with replicas (write_ack = \"replica\"; one per batch).",
        &[],
        Stats::get(&s.upstream.write_ack_waits) as f64,
    );
    f.counter(
        "hive_write_ack_refused_total",
        "Writes answered NOREPLICAS: too few replicas confirmed them in time (outcome unknown).",
        &[],
        Stats::get(&s.upstream.write_ack_refused) as f64,
    );
    let map = shared.plane.reads.load();
    let topo = shared.plane.topology.load();
    for v in &map.views {
        let shard = topo.shard_label(v.shard);
        let l = [("addr", v.addr.as_str()), ("shard", shard.as_str())];
        f.gauge(
            "hive_replica_readable",
            "1 when the read policy may send reads to this replica.",
            &l,
            if v.stale.is_none() { 1.0 } else { 0.0 },
        );
        if let Some(ms) = v.lag_ms {
            f.gauge(
                "hive_replica_read_lag_seconds",
                "Replica lag as the read policy last measured it.",
                &l,
                ms as f64 / 1000.0,
            );
        }
    }
}
