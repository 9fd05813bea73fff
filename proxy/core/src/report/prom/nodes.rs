//! The nodes' and sentinels' metrics from the last poll, under redis_exporter's names where
//! the meaning is the same, with `addr` and `shard` labels since one proxy covers every node.

use super::{bool01, Families};
use hive_upstream::facts::Snapshot;

pub(super) fn metrics(s: &Snapshot, f: &mut Families) {
    f.gauge(
        "hive_node_poll_timestamp_seconds",
        "When the proxy last polled the nodes.",
        &[],
        s.taken_unix_ms as f64 / 1000.0,
    );
    f.gauge(
        "hive_node_poll_duration_seconds",
        "How long the last poll took.",
        &[],
        s.poll_ms as f64 / 1000.0,
    );
    f.gauge(
        "hive_slots_covered",
        "Slots whose master answered the last poll.",
        &[],
        s.slots_covered as f64,
    );
    f.gauge(
        "hive_slots_assigned",
        "Slots assigned to a shard.",
        &[],
        s.slots_assigned as f64,
    );
    for (i, sh) in s.shards.iter().enumerate() {
        let l = [("shard", sh.label.as_str())];
        f.gauge(
            "hive_shard_master_up",
            "Whether the shard's master answered the last poll as a master.",
            &l,
            if s.master_up(i) { 1.0 } else { 0.0 },
        );
        let replicas = sh
            .replicas
            .iter()
            .filter(|r| s.node(r).is_some_and(|n| n.up && n.role == "replica"))
            .count();
        f.gauge(
            "hive_shard_replicas_up",
            "Replicas of the shard that answered the last poll.",
            &l,
            replicas as f64,
        );
    }
    for n in &s.nodes {
        let l = [("addr", n.addr.as_str()), ("shard", n.shard_label.as_str())];
        f.gauge(
            "redis_up",
            "Whether the node answered the last poll.",
            &l,
            bool01(n.up),
        );
        if !n.up {
            continue;
        }
        let module = n.module_version.as_deref().unwrap_or("");
        f.gauge(
            "redis_instance_info",
            "The node's role and versions.",
            &[
                l[0],
                l[1],
                ("role", n.role.as_str()),
                ("redis_version", n.redis_version.as_str()),
                ("hive_module_version", module),
            ],
            1.0,
        );
        f.gauge(
            "hive_module_loaded",
            "Whether hive-module is loaded on the node.",
            &l,
            bool01(n.module_version.is_some()),
        );
        f.gauge(
            "redis_uptime_in_seconds",
            "Node uptime.",
            &l,
            n.uptime_s as f64,
        );
        f.gauge(
            "redis_memory_used_bytes",
            "used_memory.",
            &l,
            n.used_memory as f64,
        );
        f.gauge(
            "redis_memory_max_bytes",
            "maxmemory (0: no limit).",
            &l,
            n.maxmemory as f64,
        );
        f.gauge(
            "redis_db_keys",
            "Keys in the node's databases.",
            &l,
            n.keys as f64,
        );
        f.gauge(
            "redis_db_keys_expiring",
            "Keys with a TTL.",
            &l,
            n.expires as f64,
        );
        f.counter(
            "redis_keyspace_hits_total",
            "keyspace_hits.",
            &l,
            n.hits as f64,
        );
        f.counter(
            "redis_keyspace_misses_total",
            "keyspace_misses.",
            &l,
            n.misses as f64,
        );
        f.counter(
            "redis_evicted_keys_total",
            "evicted_keys.",
            &l,
            n.evicted as f64,
        );
        f.counter(
            "redis_expired_keys_total",
            "expired_keys.",
            &l,
            n.expired as f64,
        );
        f.gauge("redis_instantaneous_operations_per_second", "instantaneous_ops_per_sec (redis_exporter: redis_instantaneous_ops_per_sec, renamed for promtool's lint).", &l, n.ops_per_sec as f64);
        f.gauge(
            "redis_connected_clients",
            "connected_clients.",
            &l,
            n.connected_clients as f64,
        );
        f.counter(
            "redis_commands_processed_total",
            "total_commands_processed.",
            &l,
            n.commands_processed as f64,
        );
        f.counter(
            "redis_net_input_bytes_total",
            "total_net_input_bytes.",
            &l,
            n.net_input_bytes as f64,
        );
        f.counter(
            "redis_net_output_bytes_total",
            "total_net_output_bytes.",
            &l,
            n.net_output_bytes as f64,
        );
        f.gauge(
            "redis_master_repl_offset",
            "The node's replication offset.",
            &l,
            n.repl_offset as f64,
        );
        f.gauge(
            "redis_connected_slaves",
            "Replicas connected to the node.",
            &l,
            n.connected_replicas as f64,
        );
        if let Some(up) = n.master_link_up {
            f.gauge(
                "redis_master_link_up",
                "Whether a replica's link to its master is up.",
                &l,
                bool01(up),
            );
        }
        if let (Some(ms), Some(src)) = (n.lag_ms, n.lag_source.as_deref()) {
            f.gauge("hive_replica_lag_seconds", "How far a replica is behind its master (source module: HIVE.LAG heartbeat; info: seconds since its last ACK).", &[l[0], l[1], ("source", src)], ms as f64 / 1000.0);
        }
        f.gauge(
            "redis_loading_dump_file",
            "Whether the node is loading its dataset.",
            &l,
            bool01(n.loading),
        );
        f.gauge(
            "redis_rdb_last_save_timestamp_seconds",
            "rdb_last_save_time.",
            &l,
            n.rdb_last_save_time as f64,
        );
        f.gauge(
            "redis_rdb_last_bgsave_status",
            "1 when the last RDB save succeeded.",
            &l,
            bool01(n.rdb_last_bgsave_ok),
        );
        f.gauge(
            "redis_rdb_changes_since_last_save",
            "rdb_changes_since_last_save.",
            &l,
            n.rdb_changes_since_last_save as f64,
        );
        f.gauge(
            "redis_aof_enabled",
            "aof_enabled.",
            &l,
            bool01(n.aof_enabled),
        );
        f.gauge(
            "redis_aof_last_write_status",
            "1 when the last AOF write succeeded.",
            &l,
            bool01(n.aof_last_write_ok),
        );
        f.gauge(
            "redis_aof_last_bgrewrite_status",
            "1 when the last AOF rewrite succeeded.",
            &l,
            bool01(n.aof_last_rewrite_ok),
        );
        if let Some(state) = &n.cluster_state {
            f.gauge(
                "redis_cluster_state",
                "1 when the node's cluster_state is ok.",
                &l,
                bool01(state == "ok"),
            );
            if n.role == "master" {
                f.gauge(
                    "hive_node_slots_migrating",
                    "Slots the master has open to move out (a reshard in progress).",
                    &l,
                    n.slots_migrating as f64,
                );
                f.gauge(
                    "hive_node_slots_importing",
                    "Slots the master has open to move in (a reshard in progress).",
                    &l,
                    n.slots_importing as f64,
                );
                f.counter(
                    "hive_node_keys_imported_total",
                    "Keys MIGRATE moved into the node since it started (its restore-asking calls).",
                    &l,
                    n.keys_imported as f64,
                );
            }
        }
        f.gauge(
            "hive_node_ping_seconds",
            "Round trip of a PING from the proxy.",
            &l,
            n.ping_us as f64 / 1e6,
        );
        if let Some(t) = n.last_backup_unix_ms {
            f.gauge(
                "hive_backup_last_success_timestamp_seconds",
                "When the node's newest successful HIVE.BACKUP finished.",
                &l,
                t as f64 / 1000.0,
            );
        }
    }
    for sen in &s.sentinels {
        let a = [("sentinel", sen.addr.as_str())];
        f.gauge(
            "hive_sentinel_up",
            "Whether the sentinel answered the last poll.",
            &a,
            bool01(sen.up),
        );
        if !sen.up {
            continue;
        }
        f.gauge(
            "redis_sentinel_masters",
            "Masters the sentinel monitors.",
            &a,
            sen.masters.len() as f64,
        );
        for m in &sen.masters {
            let l = [
                a[0],
                ("master_name", m.name.as_str()),
                ("master_address", m.addr.as_str()),
            ];
            f.gauge(
                "redis_sentinel_master_status",
                "1 when the sentinel sees the master as ok (flags `master` only).",
                &l,
                bool01(m.flags == "master"),
            );
            f.gauge(
                "redis_sentinel_master_sentinels",
                "Sentinels monitoring the master, this one included.",
                &l,
                (m.other_sentinels + 1) as f64,
            );
            f.gauge(
                "redis_sentinel_master_slaves",
                "Replicas the sentinel knows for the master.",
                &l,
                m.replicas as f64,
            );
            f.gauge(
                "redis_sentinel_master_setting_quorum",
                "The master's configured quorum.",
                &l,
                m.quorum as f64,
            );
            f.gauge(
                "redis_sentinel_master_ckquorum_status",
                "1 when SENTINEL CKQUORUM passes.",
                &l,
                bool01(m.ckquorum_ok),
            );
        }
    }
}
