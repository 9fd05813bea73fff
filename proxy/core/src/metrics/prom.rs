//! `/metrics`: the proxy's counters and the nodes' last poll as Prometheus metrics, built at
//! scrape time (per-worker counters summed here, never on the request path) and written by
//! the `prometheus` crate's text encoder. Node metrics carry redis_exporter's names, with
//! `addr` and `shard` labels since one proxy covers every node.

use std::collections::BTreeMap;

use hive_common::command::CommandTable;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use super::events::EventHistogram;
use super::worker::{BUCKETS_US, ERROR_CODES};
use super::Stats;
use crate::facts::Snapshot;
use crate::server::Shared;

/// Metric families under construction, by name.
#[derive(Default)]
struct Families {
    all: BTreeMap<&'static str, MetricFamily>,
}

fn labels(l: &[(&str, &str)]) -> Vec<LabelPair> {
    l.iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name(k.to_string());
            p.set_value(v.to_string());
            p
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &'static str, help: &str, t: MetricType) -> &mut MetricFamily {
        self.all.entry(name).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(t);
            f
        })
    }

    fn gauge(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_gauge(g);
        self.family(name, help, MetricType::GAUGE)
            .mut_metric()
            .push(m);
    }

    fn counter(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], v: f64) {
        let mut c = Counter::default();
        c.set_value(v);
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_counter(c);
        self.family(name, help, MetricType::COUNTER)
            .mut_metric()
            .push(m);
    }

    /// `buckets`: cumulative counts per upper bound (seconds).
    fn histogram(
        &mut self,
        name: &'static str,
        help: &str,
        l: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(le, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*le);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_label(labels(l));
        m.set_histogram(h);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(m);
    }

    fn event_histogram(&mut self, name: &'static str, help: &str, h: &EventHistogram) {
        let (buckets, sum, count) = h.cumulative();
        self.histogram(name, help, &[], &buckets, sum, count);
    }

    fn encode(self) -> String {
        let families: Vec<MetricFamily> = self.all.into_values().collect();
        let mut out = Vec::new();
        // Writing to a Vec fails only on a malformed family, which this file never builds
        // (every family has a name, a type and matching samples).
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The whole exposition.
pub fn render(shared: &Shared) -> String {
    let mut f = Families::default();
    proxy_metrics(shared, &mut f);
    if let Some(s) = shared.facts.latest() {
        node_metrics(&s, &mut f);
    }
    f.encode()
}

fn proxy_metrics(shared: &Shared, f: &mut Families) {
    let s = &shared.stats;
    let g = |c: &std::sync::atomic::AtomicU64| Stats::get(c) as f64;
    let mode = shared.config.backend.mode.as_str();
    f.gauge(
        "hive_build_info",
        "Hive's version and backend mode.",
        &[("version", env!("CARGO_PKG_VERSION")), ("mode", mode)],
        1.0,
    );
    f.gauge(
        "hive_uptime_seconds",
        "Seconds since the proxy started.",
        &[],
        s.started.elapsed().as_secs_f64(),
    );
    f.gauge(
        "hive_connected_clients",
        "Client connections open now.",
        &[],
        g(&s.connected_clients),
    );
    f.counter(
        "hive_connections_received_total",
        "Client connections accepted.",
        &[],
        g(&s.connections_received),
    );
    f.counter(
        "hive_rejected_connections_total",
        "Client connections refused.",
        &[("reason", "maxclients")],
        g(&s.rejected_connections),
    );
    f.counter(
        "hive_rejected_connections_total",
        "Client connections refused.",
        &[("reason", "tls_handshake")],
        g(&s.tls_handshake_failures),
    );
    f.counter(
        "hive_auth_failures_total",
        "AUTH and HELLO attempts refused (wrong password, unknown or disabled user).",
        &[],
        g(&s.auth_failures),
    );
    f.counter(
        "hive_commands_processed_total",
        "Requests decoded from clients.",
        &[],
        g(&s.commands_processed),
    );
    let table = CommandTable::get();
    let (mut bytes_in, mut bytes_out, mut slow) = (0, 0, 0);
    let mut errors = [0u64; ERROR_CODES.len()];
    let mut per_cmd: Vec<(u64, u64, [u64; BUCKETS_US.len() + 1])> =
        vec![(0, 0, [0; BUCKETS_US.len() + 1]); table.ids()];
    s.workers.each(|w| {
        bytes_in += w.bytes_in.get();
        bytes_out += w.bytes_out.get();
        slow += w.slow.get();
        for (e, c) in errors.iter_mut().zip(&w.errors) {
            *e += c.get();
        }
        for (acc, c) in per_cmd.iter_mut().zip(w.commands.iter()) {
            acc.0 += c.calls.get();
            acc.1 += c.usec.get();
            for (b, n) in acc.2.iter_mut().zip(&c.buckets) {
                *b += n.get();
            }
        }
    });
    for spec in table.all() {
        let (calls, usec, buckets) = &per_cmd[spec.id as usize];
        if *calls == 0 {
            continue;
        }
        let l = [("cmd", spec.name.as_str())];
        f.counter(
            "hive_commands_total",
            "Replies written, by command (subcommands as `config|get`).",
            &l,
            *calls as f64,
        );
        let mut acc = 0;
        let cumulative: Vec<(f64, u64)> = BUCKETS_US
            .iter()
            .zip(buckets.iter())
            .map(|(le, n)| {
                acc += n;
                (*le as f64 / 1e6, acc)
            })
            .collect();
        f.histogram(
            "hive_command_duration_seconds",
            "From request decoded to reply written, by command.",
            &l,
            &cumulative,
            *usec as f64 / 1e6,
            *calls,
        );
    }
    for (code, n) in ERROR_CODES.iter().zip(errors) {
        f.counter(
            "hive_errors_total",
            "Error replies sent to clients, by error code (Redis's errorstats).",
            &[("code", code)],
            n as f64,
        );
    }
    f.counter(
        "hive_net_input_bytes_total",
        "Bytes read from clients.",
        &[],
        bytes_in as f64,
    );
    f.counter(
        "hive_net_output_bytes_total",
        "Bytes written to clients.",
        &[],
        bytes_out as f64,
    );
    f.counter(
        "hive_slow_requests_total",
        "Requests slower than proxy.slowlog_slower_than_us.",
        &[],
        slow as f64,
    );
    f.gauge(
        "hive_slowlog_length",
        "Entries in SLOWLOG.",
        &[],
        shared.slowlog.len() as f64,
    );
    f.counter(
        "hive_redirects_total",
        "MOVED and ASK redirects followed.",
        &[("type", "moved")],
        g(&s.moved),
    );
    f.counter(
        "hive_redirects_total",
        "MOVED and ASK redirects followed.",
        &[("type", "ask")],
        g(&s.ask),
    );
    f.counter(
        "hive_retries_total",
        "Retries of requests waiting for a writable master.",
        &[],
        g(&s.retries),
    );
    f.event_histogram(
        "hive_held_request_duration_seconds",
        "How long requests that waited for a writable master waited before they succeeded.",
        &s.held,
    );
    f.counter(
        "hive_backend_failures_total",
        "Backend connections that failed to connect or died.",
        &[],
        g(&s.backend_failures),
    );
    for (addr, state, n) in s.backends.all() {
        f.gauge(
            "hive_backend_connections",
            "Backend connections, by node and state.",
            &[("addr", &addr), ("state", state.as_str())],
            n as f64,
        );
    }
    f.counter(
        "hive_topology_refreshes_total",
        "Topology re-reads.",
        &[],
        g(&s.topology_refreshes),
    );
    f.counter(
        "hive_sentinel_events_total",
        "Sentinel events received.",
        &[],
        g(&s.sentinel_events),
    );
    let clock = &shared.topology.clock;
    f.counter(
        "hive_failovers_followed_total",
        "Shards whose master the proxy switched to a new node.",
        &[],
        Stats::get(&clock.followed) as f64,
    );
    f.event_histogram(
        "hive_failover_recovery_seconds",
        "From the first request that had to wait to the first that succeeded on the new master.",
        &clock.recovery,
    );
    f.gauge(
        "hive_client_buffers_bytes",
        "Buffer bytes held by all clients.",
        &[],
        g(&s.client_buffers),
    );
    f.counter(
        "hive_client_disconnects_total",
        "Clients closed by a limit.",
        &[("reason", "output_buffer")],
        g(&s.output_limit_disconnects),
    );
    f.counter(
        "hive_client_disconnects_total",
        "Clients closed by a limit.",
        &[("reason", "query_buffer")],
        g(&s.query_limit_disconnects),
    );
    f.counter(
        "hive_client_disconnects_total",
        "Clients closed by a limit.",
        &[("reason", "maxmemory_buffers")],
        g(&s.evicted_clients),
    );
    f.counter(
        "hive_client_panics_total",
        "Client tasks that panicked (each closed its connection only).",
        &[],
        g(&s.client_panics),
    );
    f.counter(
        "hive_large_requests_total",
        "Requests sent on a client's own connection because of their size.",
        &[],
        g(&s.large_requests),
    );
    let topo = shared.topology.load();
    for i in 0..topo.map.shards().len() {
        let has = if topo.has_master(i) { 1.0 } else { 0.0 };
        f.gauge(
            "hive_shard_has_master",
            "Whether the proxy routes the shard to a master (0 while failing over).",
            &[("shard", topo.shard_name(i))],
            has,
        );
    }
    f.gauge(
        "hive_unassigned_slots",
        "Slots no shard serves in the proxy's topology.",
        &[],
        topo.map.unassigned() as f64,
    );
}

fn node_metrics(s: &Snapshot, f: &mut Families) {
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
        let l = [("shard", sh.name.as_str())];
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
        let l = [("addr", n.addr.as_str()), ("shard", n.shard_name.as_str())];
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

fn bool01(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
