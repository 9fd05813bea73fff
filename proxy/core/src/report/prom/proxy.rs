//! The proxy's own metrics: clients, commands with latency, errors, redirects, holds,
//! failovers followed, backend connections, bytes.

use hive_common::command::CommandTable;

use super::Families;
use crate::metrics::worker::{BUCKETS_US, ERROR_CODES};
use crate::metrics::Stats;
use crate::state::Shared;

pub(super) fn metrics(shared: &Shared, f: &mut Families) {
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
    let (tracking_clients, tracking_keys) = shared.tracking.counts();
    f.gauge(
        "hive_tracking_clients",
        "Clients with CLIENT TRACKING on.",
        &[],
        tracking_clients as f64,
    );
    f.gauge(
        "hive_tracking_keys",
        "Keys remembered for invalidation (bounded by proxy.tracking_table_max_keys).",
        &[],
        tracking_keys as f64,
    );
    let t = &shared.tracking;
    for (name, help, c) in [
        (
            "hive_tracking_invalidations_total",
            "Invalidation messages sent to tracking clients (flushes included).",
            &t.invalidations,
        ),
        (
            "hive_tracking_evictions_total",
            "Keys evicted from the tracking table past its bound, each with an invalidation.",
            &t.evictions,
        ),
        (
            "hive_tracking_flushes_total",
            "Flushes sent to every tracking client (FLUSHALL, a failover, a lost feed).",
            &t.flushes,
        ),
    ] {
        f.counter(name, help, &[], g(c));
    }
    if let Some(fleet) = &shared.fleet {
        f.gauge(
            "hive_fleet_members",
            "Live Hives of the fleet, this one among them, as cluster clients are shown them.",
            &[],
            fleet.members().len() as f64,
        );
    }
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
        g(&s.upstream.moved),
    );
    f.counter(
        "hive_redirects_total",
        "MOVED and ASK redirects followed.",
        &[("type", "ask")],
        g(&s.upstream.ask),
    );
    f.counter(
        "hive_tryagain_waits_total",
        "Requests that waited for a migrating slot (TRYAGAIN, or an ASK a transaction must not follow).",
        &[],
        g(&s.upstream.tryagain),
    );
    f.counter(
        "hive_retries_total",
        "Retries of requests waiting for a writable master.",
        &[],
        g(&s.upstream.retries),
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
        g(&s.upstream.backend_failures),
    );
    for (addr, state, n) in s.upstream.backends.all() {
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
        g(&s.upstream.topology_refreshes),
    );
    f.counter(
        "hive_sentinel_events_total",
        "Sentinel events received.",
        &[],
        g(&s.upstream.sentinel_events),
    );
    let clock = &shared.plane.topology.clock;
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
    let topo = shared.plane.topology.load();
    for i in 0..topo.map.shards().len() {
        let has = if topo.has_master(i) { 1.0 } else { 0.0 };
        f.gauge(
            "hive_shard_has_master",
            "Whether the proxy routes the shard to a master (0 while failing over).",
            &[("shard", &topo.shard_label(i))],
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
