//! The `# Proxy` section that INFO puts before the node's sections: the counters and the
//! topology as the proxy routes it.

use crate::metrics::Stats;
use crate::state::Shared;

/// The node's INFO text with `blocked_clients` raised by the clients Hive holds for CLIENT
/// PAUSE, as Redis counts its paused clients there.
pub fn add_blocked(body: &[u8], held: u64) -> std::borrow::Cow<'_, [u8]> {
    const FIELD: &[u8] = b"blocked_clients:";
    if held == 0 {
        return body.into();
    }
    let Some(at) = memchr::memmem::find(body, FIELD) else {
        return body.into();
    };
    let start = at + FIELD.len();
    let end = start
        + body[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let n: u64 = std::str::from_utf8(&body[start..end])
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = body[..start].to_vec();
    out.extend_from_slice((n + held).to_string().as_bytes());
    out.extend_from_slice(&body[end..]);
    out.into()
}

/// The `# Proxy` INFO section; `commands` is total_commands_processed as of the INFO request
/// (the commands before it, as Redis counts; the counter itself is added to per batch).
pub fn proxy_section(shared: &Shared, commands: u64) -> String {
    let s = &shared.stats;
    let topo = shared.plane.topology.load();
    let mut out = format!(
        "# Proxy\r\nhive_version:{}\r\nbackend_mode:{}\r\nuptime_in_seconds:{}\r\nconnected_clients:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        shared.config.backend.mode.as_str(),
        s.started.elapsed().as_secs(),
        Stats::get(&s.connected_clients),
    );
    // Counters start again from CONFIG RESETSTAT, as Redis's do; /metrics never does.
    let base = s.info_base.lock().unwrap_or_else(|p| p.into_inner());
    for (name, v) in counters(s) {
        let v = if name == "total_commands_processed" {
            commands
        } else {
            v
        };
        let since = base.iter().find(|(n, _)| *n == name).map_or(0, |(_, b)| *b);
        out.push_str(&format!("{name}:{}\r\n", v.saturating_sub(since)));
    }
    drop(base);
    out.push_str(&format!(
        "client_buffers_bytes:{}\r\npaused_clients:{}\r\nmasters:{}\r\nunassigned_slots:{}\r\nmaster_nodes:{}\r\n",
        Stats::get(&s.client_buffers),
        Stats::get(&s.paused_clients),
        (0..topo.map.shards().len())
            .filter(|&i| topo.has_master(i))
            .count(),
        topo.map.unassigned(),
        topo.map
            .shards()
            .iter()
            .map(|s| s.master.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ));
    let (tracking_clients, tracking_keys) = shared.tracking.counts();
    let t = &shared.tracking;
    out.push_str(&format!(
        "tracking_clients:{tracking_clients}\r\ntracking_total_keys:{tracking_keys}\r\ntracking_invalidations:{}\r\ntracking_evictions:{}\r\ntracking_flushes:{}\r\n",
        t.invalidations.load(std::sync::atomic::Ordering::Relaxed),
        t.evictions.load(std::sync::atomic::Ordering::Relaxed),
        t.flushes.load(std::sync::atomic::Ordering::Relaxed),
    ));
    out.push_str(&cache_lines(shared));
    if let Some(f) = &shared.fleet {
        let members = f.members();
        let addrs: Vec<&str> = members.iter().map(|m| m.addr.as_str()).collect();
        out.push_str(&format!(
            "fleet_announce:{}\r\nfleet_members:{}\r\nfleet_member_addrs:{}\r\n",
            f.me.addr,
            members.len(),
            addrs.join(",")
        ));
    }
    if !shared.config.backend.sentinels.is_empty() {
        out.push_str(&format!(
            "sentinels:{}\r\n",
            shared.config.backend.sentinels.join(",")
        ));
    }
    for (i, (shard, ranges)) in topo.map.shards().iter().zip(topo.map.ranges()).enumerate() {
        let slots: Vec<String> = ranges
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}-{}", r.start, r.end)
                }
            })
            .collect();
        let status = if topo.has_master(i) {
            "ok"
        } else {
            "no_master"
        };
        out.push_str(&format!(
            "shard{i}:name={},master={},replicas={},slots={},status={status}\r\n",
            topo.shard_name(i),
            shard.master,
            shard.replicas.join("|"),
            slots.join("|"),
        ));
    }
    if let Some(f) = shared.plane.facts.latest() {
        // From the nodes' last poll: a move run by `hive rebalance` (or redis-cli) shows here.
        let (migrating, importing, moved) = f.resharding();
        out.push_str(&format!(
            "reshard_slots_migrating:{migrating}\r\nreshard_slots_importing:{importing}\r\nreshard_keys_moved:{moved}\r\n"
        ));
    }
    reads_section(shared, &mut out);
    out.push_str("\r\n");
    out
}

/// The INFO counters that CONFIG RESETSTAT starts again, with their current values.
pub fn counters(s: &Stats) -> [(&'static str, u64); 21] {
    let u = &s.upstream;
    [
        (
            "total_connections_received",
            Stats::get(&s.connections_received),
        ),
        ("rejected_connections", Stats::get(&s.rejected_connections)),
        (
            "total_commands_processed",
            Stats::get(&s.commands_processed),
        ),
        ("error_replies", Stats::get(&s.error_replies)),
        ("moved_redirects", Stats::get(&u.moved)),
        ("ask_redirects", Stats::get(&u.ask)),
        ("tryagain_waits", Stats::get(&u.tryagain)),
        ("retries", Stats::get(&u.retries)),
        ("backend_failures", Stats::get(&u.backend_failures)),
        ("topology_refreshes", Stats::get(&u.topology_refreshes)),
        ("sentinel_events", Stats::get(&u.sentinel_events)),
        ("client_panics", Stats::get(&s.client_panics)),
        (
            "tls_handshake_failures",
            Stats::get(&s.tls_handshake_failures),
        ),
        (
            "output_limit_disconnects",
            Stats::get(&s.output_limit_disconnects),
        ),
        (
            "query_limit_disconnects",
            Stats::get(&s.query_limit_disconnects),
        ),
        ("evicted_clients", Stats::get(&s.evicted_clients)),
        ("large_requests", Stats::get(&s.large_requests)),
        ("large_reply_handoffs", Stats::get(&u.large_reply_handoffs)),
        ("write_ack_waits", Stats::get(&u.write_ack_waits)),
        ("write_ack_refused", Stats::get(&u.write_ack_refused)),
        ("auth_failures", Stats::get(&s.auth_failures)),
    ]
}

/// CONFIG RESETSTAT: INFO's counters count from now on (the Prometheus counters keep going:
/// a counter that falls back would read as a reset of the process).
pub fn reset_counters(shared: &Shared) {
    let s = &shared.stats;
    let mut base = counters(s).to_vec();
    base.extend(cache_counters(shared).into_iter().flatten());
    *s.info_base.lock().unwrap_or_else(|p| p.into_inner()) = base;
}

/// The near cache's counters that CONFIG RESETSTAT starts again (`None`: no cache).
fn cache_counters(shared: &Shared) -> Option<[(&'static str, u64); 7]> {
    let c = shared.cache.as_ref()?;
    let (hits, misses, joined) =
        crate::metrics::worker::WorkerStats::cache_reads(&shared.stats.workers);
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Some([
        ("cache_hits", hits),
        ("cache_misses", misses),
        ("cache_joined", joined),
        ("cache_fills", load(&c.fills)),
        ("cache_invalidations", load(&c.invalidations)),
        ("cache_evictions", load(&c.evictions)),
        ("cache_flushes", load(&c.flushes)),
    ])
}

/// The read policy's view of the replicas, and the failover push counters.
fn reads_section(shared: &Shared, out: &mut String) {
    let s = &shared.stats;
    let mut reads = 0;
    s.workers.each(|w| reads += w.replica_reads.get());
    let live = shared.live.load();
    out.push_str(&format!(
        "read_from:{}\r\nmax_replica_lag_ms:{}\r\nread_your_writes:{}\r\nreplica_reads:{reads}\r\n\
module_events:{}\r\nfailover_pushes:{}\r\n",
        live.backend.read_from.as_str(),
        live.backend.max_replica_lag_ms,
        if live.backend.read_your_writes {
            "yes"
        } else {
            "no"
        },
        Stats::get(&s.upstream.module_events),
        Stats::get(&s.upstream.failover_pushes),
    ));
    // Set when the proxy starts (the connections are built with it): not the live config.
    let cfg = &shared.plane.config;
    out.push_str(&format!(
        "write_ack:{}\r\nmin_replicas_ack:{}\r\nwrite_ack_timeout_ms:{}\r\n",
        cfg.write_ack.as_str(),
        cfg.min_replicas_ack,
        cfg.write_ack_timeout_ms
    ));
    for (n, v) in shared.plane.reads.load().views.iter().enumerate() {
        let lag = v.lag_ms.map_or("?".to_string(), |l| l.to_string());
        let state = v
            .stale
            .map_or("readable".to_string(), |r| r.replace(' ', "_"));
        out.push_str(&format!(
            "replica{n}:addr={},shard={},lag_ms={lag},state={state}\r\n",
            v.addr, v.shard
        ));
    }
}

/// The near cache's lines of the `# Proxy` section; its counters start again from CONFIG
/// RESETSTAT, as Redis's `keyspace_hits` do.
fn cache_lines(shared: &Shared) -> String {
    let (Some(c), Some(now)) = (&shared.cache, cache_counters(shared)) else {
        return "cache_enabled:0\r\n".into();
    };
    let base = shared
        .stats
        .info_base
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let [hits, misses, joined, fills, invalidations, evictions, flushes] = now.map(|(name, v)| {
        let since = base.iter().find(|(n, _)| *n == name).map_or(0, |(_, b)| *b);
        v.saturating_sub(since)
    });
    let ratio = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    let (keys, bytes) = c.counts();
    format!(
        "cache_enabled:1\r\ncache_ready:{}\r\ncache_keys:{keys}\r\ncache_bytes:{bytes}\r\ncache_max_memory:{}\r\ncache_hits:{hits}\r\ncache_misses:{misses}\r\ncache_hit_ratio:{ratio:.4}\r\ncache_joined:{joined}\r\ncache_fills:{fills}\r\ncache_invalidations:{invalidations}\r\ncache_evictions:{evictions}\r\ncache_flushes:{flushes}\r\n",
        u8::from(c.is_ready()),
        c.max_memory(),
    )
}
