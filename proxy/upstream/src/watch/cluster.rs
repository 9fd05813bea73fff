//! Redis Cluster topology: read `CLUSTER SLOTS` (and `CLUSTER SHARDS` for replicas that have
//! not replicated yet), and keep the snapshot fresh.

use std::sync::Arc;
use std::time::Duration;

use hive_common::addr;
use hive_common::resp::Value;
use hive_common::topology::{Shard, ShardMap, SlotRange};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::conn::control::QueryError;
use crate::conn::Auth;
use crate::stats::UpstreamStats;
use crate::Backplane;

/// Reads the slot map from one node with `CLUSTER SLOTS`.
pub async fn fetch_shard_map(
    plane: &Backplane,
    addr: &str,
    auth: Option<&Auth>,
) -> Result<ShardMap, QueryError> {
    let mut c = plane.connector.control(addr, auth).await?;
    let reply = c.call(&["CLUSTER", "SLOTS"]).await?;
    let map = parse_cluster_slots(&reply, addr).map_err(|reason| QueryError::BadReply {
        addr: addr.into(),
        reason,
    })?;
    // CLUSTER SLOTS lists a replica only once it has replicated some data; CLUSTER SHARDS
    // (Redis 7.0) lists every one, so "every node" commands reach a new replica too.
    match c.call(&["CLUSTER", "SHARDS"]).await {
        Ok(shards) => Ok(with_all_replicas(map, &shards, addr)),
        Err(_) => Ok(map),
    }
}

/// `map` with the replicas `CLUSTER SHARDS` lists that it lacks (those not marked failed),
/// each under its master.
pub fn with_all_replicas(map: ShardMap, shards: &Value, queried: &str) -> ShardMap {
    let default_host = addr::split(queried).map_or("127.0.0.1", |(h, _)| h);
    let Some(list) = shards.as_array() else {
        return map;
    };
    let mut entries: Vec<(Shard, Vec<SlotRange>)> =
        map.shards().iter().cloned().zip(map.ranges()).collect();
    let mut added = false;
    for shard in list {
        let Some(nodes) = shard.field("nodes").and_then(Value::as_array) else {
            continue;
        };
        let addr_of = |n: &Value| -> Option<String> {
            let port = n
                .field("port")
                .or(n.field("tls-port"))
                .and_then(Value::as_int)?;
            let host = n
                .field("ip")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty() && *h != "?")
                .unwrap_or(default_host);
            Some(addr::join(host, port))
        };
        let is = |n: &Value, r: &str| n.field("role").and_then(Value::as_str) == Some(r);
        let Some(master) = nodes.iter().find(|n| is(n, "master")).and_then(addr_of) else {
            continue;
        };
        let Some((entry, _)) = entries.iter_mut().find(|(s, _)| s.master == master) else {
            continue;
        };
        for n in nodes.iter().filter(|n| is(n, "replica")) {
            if n.field("health").and_then(Value::as_str) == Some("failed") {
                continue;
            }
            if let Some(a) = addr_of(n) {
                if !entry.replicas.contains(&a) {
                    entry.replicas.push(a);
                    added = true;
                }
            }
        }
    }
    if !added {
        return map;
    }
    ShardMap::new(entries).unwrap_or(map)
}

/// Parses a `CLUSTER SLOTS` reply. A node's endpoint is NULL or empty when the node does not
/// know it: per the Redis Cluster specification that means the host `queried` was reached at.
/// `?` means an unknown hostname: the node's `ip` metadata is used if given; otherwise a
/// replica is left out and a master's ranges stay unassigned, and the rest of the map is used.
pub fn parse_cluster_slots(reply: &Value, queried: &str) -> Result<ShardMap, String> {
    let rows = reply
        .as_array()
        .ok_or("CLUSTER SLOTS did not return an array")?;
    let default_host = addr::split(queried).map_or("127.0.0.1", |(h, _)| h);
    let mut shards: Vec<(Shard, Vec<SlotRange>)> = Vec::new();
    for row in rows {
        let r = row.as_array().ok_or("slot row is not an array")?;
        if r.len() < 3 {
            return Err("slot row too short".into());
        }
        let bound = |v: &Value| {
            v.as_int()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or("bad slot number")
        };
        let range = SlotRange {
            start: bound(&r[0])?,
            end: bound(&r[1])?,
        };
        let Some(master) = node_addr(&r[2], default_host)? else {
            continue;
        };
        let mut replicas = Vec::new();
        for v in &r[3..] {
            replicas.extend(node_addr(v, default_host)?);
        }
        match shards.iter_mut().find(|(s, _)| s.master == master) {
            Some((_, ranges)) => ranges.push(range),
            None => shards.push((Shard { master, replicas }, vec![range])),
        }
    }
    ShardMap::new(shards).map_err(|e| e.to_string())
}

/// One node entry of CLUSTER SLOTS as `host:port`; `None` when its endpoint is unknown.
fn node_addr(v: &Value, default_host: &str) -> Result<Option<String>, String> {
    let a = v.as_array().ok_or("node entry is not an array")?;
    let port = a
        .get(1)
        .and_then(Value::as_int)
        .ok_or("node without port")?;
    let host = match a.first() {
        None | Some(Value::Nil) => default_host,
        Some(h) => match h.as_str().ok_or("node host is not a string")? {
            "" => default_host,
            "?" => match a.get(3).and_then(|m| m.field("ip")).and_then(Value::as_str) {
                Some(ip) => ip,
                None => return Ok(None),
            },
            h => h,
        },
    };
    Ok(Some(addr::join(host, port)))
}

/// Minimum gap between two refreshes, so a burst of MOVED replies causes one refresh.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(50);

/// Keeps `plane.topology` current: on a timer and whenever `plane.refresh` is notified.
pub async fn run_refresher(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(plane.config.refresh_interval_ms);
    loop {
        refresh_once(&plane).await;
        tokio::time::sleep(MIN_REFRESH_GAP).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = plane.refresh.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads the map from `addr` first (a node that just reported its promotion knows it before
/// gossip reaches the others) and installs it; returns whether it changed anything.
pub async fn refresh_from(plane: &Backplane, addr: &str) -> bool {
    let auth = plane.config.node_auth();
    let current = plane.topology.load_full();
    match fetch_shard_map(plane, addr, auth.as_ref()).await {
        Ok(map) if !map.shards().is_empty() && map != current.map => {
            info!(from = %addr, masters = map.shards().len(), "topology changed (pushed by hive-module)");
            plane.topology.install(map, Vec::new());
            true
        }
        Ok(_) => false,
        Err(e) => {
            warn!(error = %e, "topology refresh from the promoted node failed");
            false
        }
    }
}

/// Asks the known masters, then their replicas, then the seeds, and installs the first answer.
/// Returns whether a map was read.
pub async fn refresh_once(plane: &Backplane) -> bool {
    UpstreamStats::add(&plane.stats.topology_refreshes, 1);
    let auth = plane.config.node_auth();
    let current = plane.topology.load_full();
    let mut candidates: Vec<String> = current
        .map
        .shards()
        .iter()
        .map(|s| s.master.clone())
        .collect();
    candidates.extend(
        current
            .map
            .shards()
            .iter()
            .flat_map(|s| s.replicas.iter().cloned()),
    );
    for seed in &plane.live.load().seeds {
        if !candidates.contains(seed) {
            candidates.push(seed.clone());
        }
    }
    for addr in &candidates {
        match fetch_shard_map(plane, addr, auth.as_ref()).await {
            Ok(map) if map.shards().is_empty() => continue,
            Ok(map) => {
                if map != current.map {
                    info!(
                        from = %addr,
                        masters = map.shards().len(),
                        unassigned = map.unassigned(),
                        "topology changed"
                    );
                    plane.topology.install(map, Vec::new());
                }
                return true;
            }
            Err(e) => warn!(error = %e, "topology refresh: node did not answer"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hive_common::Slot;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Bulk(Bytes::copy_from_slice(host.as_bytes())),
            Value::Int(port),
            Value::Bulk(Bytes::from_static(b"id")),
        ])
    }

    /// A CLUSTER SLOTS reply: (start, end, master port, replica ports); host "" for port 7001.
    fn slots_reply(rows: &[(i64, i64, i64, &[i64])]) -> Value {
        let host = |p: i64| if p == 7001 { "" } else { "127.0.0.1" };
        Value::Array(
            rows.iter()
                .map(|(s, e, m, reps)| {
                    let mut r = vec![Value::Int(*s), Value::Int(*e), node(host(*m), *m)];
                    r.extend(reps.iter().map(|p| node(host(*p), *p)));
                    Value::Array(r)
                })
                .collect(),
        )
    }

    #[test]
    fn parse_cluster_slots_groups_ranges_by_master() {
        let overlapping = slots_reply(&[
            (0, 99, 7000, &[7003]),
            (100, 16383, 7001, &[]),
            (200, 200, 7000, &[]),
        ]);
        let err = parse_cluster_slots(&overlapping, "127.0.0.9:7001").unwrap_err();
        assert!(err.contains("assigned twice"), "{err}");
        let reply = slots_reply(&[
            (0, 99, 7000, &[7003]),
            (100, 199, 7001, &[]),
            (200, 16383, 7000, &[]),
        ]);
        let m = parse_cluster_slots(&reply, "127.0.0.9:7001").unwrap();
        assert_eq!(m.shards().len(), 2);
        assert_eq!(m.shards()[0].replicas, vec!["127.0.0.1:7003".to_string()]);
        assert_eq!(m.shards()[1].master, "127.0.0.9:7001");
        assert_eq!(m.shard_of(Slot::new(300).unwrap()), Some(0));
        assert_eq!(m.shard_of(Slot::new(150).unwrap()), Some(1));
    }

    #[test]
    fn cluster_shards_adds_replicas_that_slots_leaves_out() {
        let map =
            parse_cluster_slots(&slots_reply(&[(0, 16383, 7000, &[])]), "127.0.0.1:7000").unwrap();
        let node = |ip: &str, port: i64, role: &str, health: &str| {
            Value::Array(vec![
                Value::Bulk(Bytes::from_static(b"ip")),
                Value::Bulk(Bytes::copy_from_slice(ip.as_bytes())),
                Value::Bulk(Bytes::from_static(b"port")),
                Value::Int(port),
                Value::Bulk(Bytes::from_static(b"role")),
                Value::Bulk(Bytes::copy_from_slice(role.as_bytes())),
                Value::Bulk(Bytes::from_static(b"replication-offset")),
                Value::Int(0),
                Value::Bulk(Bytes::from_static(b"health")),
                Value::Bulk(Bytes::copy_from_slice(health.as_bytes())),
            ])
        };
        let shards = Value::Array(vec![Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"slots")),
            Value::Array(vec![Value::Int(0), Value::Int(16383)]),
            Value::Bulk(Bytes::from_static(b"nodes")),
            Value::Array(vec![
                node("127.0.0.1", 7000, "master", "online"),
                node("127.0.0.1", 7003, "replica", "loading"),
                node("127.0.0.1", 7004, "replica", "failed"),
            ]),
        ])]);
        let merged = with_all_replicas(map, &shards, "127.0.0.1:7000");
        assert_eq!(
            merged.shards()[0].replicas,
            vec!["127.0.0.1:7003".to_string()]
        );
        assert_eq!(merged.unassigned(), 0);
    }

    #[test]
    fn parse_cluster_slots_survives_unknown_endpoints() {
        let entry = |host: Value, port: i64, meta: Option<Value>| {
            let mut a = vec![
                host,
                Value::Int(port),
                Value::Bulk(Bytes::from_static(b"id")),
            ];
            a.extend(meta);
            Value::Array(a)
        };
        let bulk = |s: &str| Value::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let ip_meta = Value::Array(vec![bulk("ip"), bulk("127.0.0.7")]);
        let reply = Value::Array(vec![
            // NULL endpoint: the host that was queried.
            Value::Array(vec![
                Value::Int(0),
                Value::Int(99),
                entry(Value::Nil, 7000, None),
                entry(bulk("?"), 7003, None),
            ]),
            // `?` with the ip in the metadata.
            Value::Array(vec![
                Value::Int(100),
                Value::Int(199),
                entry(bulk("?"), 7001, Some(ip_meta)),
            ]),
            // `?` without metadata: this master's ranges stay unassigned.
            Value::Array(vec![
                Value::Int(200),
                Value::Int(16383),
                entry(bulk("?"), 7002, None),
            ]),
        ]);
        let m = parse_cluster_slots(&reply, "[::1]:7005").unwrap();
        assert_eq!(m.shards().len(), 2);
        assert_eq!(m.shards()[0].master, "[::1]:7000");
        assert!(m.shards()[0].replicas.is_empty());
        assert_eq!(m.shards()[1].master, "127.0.0.7:7001");
        assert_eq!(m.unassigned(), 16384 - 200);
    }
}
