//! One poll: every node of the proxy's topology (INFO, PING, `HIVE.LAG` where the module is
//! loaded, CLUSTER INFO in cluster mode) and every configured sentinel (SENTINEL MASTERS,
//! CKQUORUM), all at once, each bounded by the connect timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use hive_common::resp::Value;
use tokio::sync::watch;
use tracing::debug;

use crate::config::Mode;
use crate::facts::{NodeFacts, SentinelFacts, SentinelMaster, ShardFacts, Snapshot};
use crate::topology::NO_MASTER;
use crate::Backplane;

/// Polls the deployment behind `shared` once.
pub async fn collect(plane: &Backplane) -> Snapshot {
    let started = Instant::now();
    let topo = plane.topology.load_full();
    let mut shards = Vec::new();
    let mut targets: Vec<(String, usize, &'static str)> = Vec::new();
    let mut slots_assigned = 0;
    for (i, (shard, ranges)) in topo.map.shards().iter().zip(topo.map.ranges()).enumerate() {
        let count: usize = ranges.iter().map(|r| (r.end - r.start) as usize + 1).sum();
        slots_assigned += count;
        shards.push(ShardFacts {
            name: topo.shard_name(i).to_string(),
            label: topo.shard_label(i),
            master: shard.master.clone(),
            replicas: shard.replicas.clone(),
            slots: ranges
                .iter()
                .map(|r| match r.start == r.end {
                    true => r.start.to_string(),
                    false => format!("{}-{}", r.start, r.end),
                })
                .collect(),
            slot_count: count,
        });
        if shard.master != NO_MASTER {
            targets.push((shard.master.clone(), i, "master"));
        }
        for r in &shard.replicas {
            targets.push((r.clone(), i, "replica"));
        }
    }
    let cluster = plane.config.mode == Mode::Cluster;
    let polls = targets
        .iter()
        .map(|(addr, _, _)| poll_node(plane, addr, cluster));
    let results = join_all(polls).await;
    let mut infos: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::with_capacity(targets.len());
    for ((addr, shard, role), (mut n, info)) in targets.iter().zip(results) {
        n.shard = Some(*shard);
        n.shard_name = shards[*shard].name.clone();
        n.shard_label = shards[*shard].label.clone();
        n.expected_role = role.to_string();
        if let Some(text) = info {
            infos.insert(addr.clone(), text);
        }
        nodes.push(n);
    }
    // Replicas without the module: their master's INFO says how long since their last ACK.
    for n in nodes.iter_mut() {
        if n.role != "replica" || n.lag_ms.is_some() {
            continue;
        }
        let master = n.shard.map(|s| shards[s].master.clone());
        if let Some(text) = master.and_then(|m| infos.get(&m)) {
            n.lag_ms = NodeFacts::lag_from_master(text, &n.addr);
            n.lag_source = n.lag_ms.map(|_| "info".to_string());
        }
    }
    let sentinels = join_all(
        plane
            .config
            .sentinels
            .iter()
            .map(|s| poll_sentinel(plane, s)),
    )
    .await;
    let mut snapshot = Snapshot {
        taken_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        poll_ms: 0,
        mode: plane.config.mode.as_str().to_string(),
        shards,
        nodes,
        sentinels,
        slots_assigned,
        slots_covered: 0,
    };
    snapshot.slots_covered = (0..snapshot.shards.len())
        .filter(|&i| snapshot.master_up(i))
        .map(|i| snapshot.shards[i].slot_count)
        .sum();
    snapshot.poll_ms = started.elapsed().as_millis() as u64;
    snapshot
}

/// One node's facts, and its INFO text for the lag of its replicas.
async fn poll_node(plane: &Backplane, addr: &str, cluster: bool) -> (NodeFacts, Option<String>) {
    let mut n = NodeFacts {
        addr: addr.to_string(),
        ..NodeFacts::default()
    };
    let limit = plane.config.connect_timeout() * 2 + Duration::from_millis(500);
    match tokio::time::timeout(limit, query_node(plane, addr, cluster, &mut n)).await {
        Ok(Ok(info)) => {
            n.up = true;
            (n, Some(info))
        }
        Ok(Err(e)) => {
            n.error = Some(e);
            (n, None)
        }
        Err(_) => {
            n.error = Some(format!("no answer within {} ms", limit.as_millis()));
            (n, None)
        }
    }
}

async fn query_node(
    plane: &Backplane,
    addr: &str,
    cluster: bool,
    n: &mut NodeFacts,
) -> Result<String, String> {
    let auth = plane.config.node_auth();
    let mut c = plane
        .connector
        .control(addr, auth.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    c.call(&["PING"]).await.map_err(|e| e.to_string())?;
    n.ping_us = t.elapsed().as_micros() as u64;
    let info = c.call(&["INFO"]).await.map_err(|e| e.to_string())?;
    let text = info.as_str().unwrap_or_default().to_string();
    n.apply_info(&text);
    if n.module_version.is_some() && n.role == "replica" {
        if let Ok(lag) = c.call(&["HIVE.LAG"]).await {
            if let Some(ms) = lag.field("lag_ms").and_then(Value::as_int) {
                n.lag_ms = Some(ms.max(0) as u64);
                n.lag_source = Some("module".into());
            }
        }
    }
    if n.module_version.is_some() {
        if let Ok(list) = c.call(&["HIVE.BACKUP", "LIST"]).await {
            n.last_backup_unix_ms = NodeFacts::newest_backup(&list);
        }
    }
    if cluster {
        if let Ok(v) = c.call(&["CLUSTER", "INFO"]).await {
            let text = v.as_str().unwrap_or_default();
            n.cluster_state = hive_common::info::field(text, "cluster_state").map(str::to_string);
        }
        if n.role == "master" {
            let nodes = c.call(&["CLUSTER", "NODES"]).await;
            let stats = c.call(&["INFO", "commandstats"]).await;
            if let (Ok(nodes), Ok(stats)) = (nodes, stats) {
                n.apply_cluster(
                    nodes.as_str().unwrap_or_default(),
                    stats.as_str().unwrap_or_default(),
                );
            }
        }
    }
    if !cluster && n.module_version.is_some() && n.role == "master" {
        let state = c.call(&["HIVE.SLOTS", "GET"]).await;
        let stats = c.call(&["INFO", "commandstats"]).await;
        if let (Ok(state), Ok(stats)) = (state, stats) {
            let topo = plane.topology.load();
            let me: Vec<String> = topo
                .map
                .shards()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.master == addr)
                .map(|(i, _)| topo.shard_name(i).to_string())
                .chain(std::iter::once(addr.to_string()))
                .collect();
            n.apply_handover(
                state.as_str().unwrap_or_default(),
                &me,
                stats.as_str().unwrap_or_default(),
            );
        }
    }
    Ok(text)
}

async fn poll_sentinel(plane: &Backplane, addr: &str) -> SentinelFacts {
    let mut s = SentinelFacts {
        addr: addr.to_string(),
        ..SentinelFacts::default()
    };
    let limit = plane.config.connect_timeout() * 2 + Duration::from_millis(500);
    match tokio::time::timeout(limit, query_sentinel(plane, addr)).await {
        Ok(Ok(masters)) => {
            s.up = true;
            s.masters = masters;
        }
        Ok(Err(e)) => s.error = Some(e),
        Err(_) => s.error = Some(format!("no answer within {} ms", limit.as_millis())),
    }
    s
}

async fn query_sentinel(plane: &Backplane, addr: &str) -> Result<Vec<SentinelMaster>, String> {
    let auth = plane.config.sentinel_auth();
    let mut c = plane
        .connector
        .control(addr, auth.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let v = c
        .call(&["SENTINEL", "MASTERS"])
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for m in v.as_array().unwrap_or_default() {
        let text = |k: &str| m.field(k).and_then(Value::as_str).unwrap_or("").to_string();
        let num = |k: &str| m.field(k).and_then(Value::as_int).unwrap_or(0).max(0) as u64;
        let name = text("name");
        let (ckquorum_ok, ckquorum) = match c.call_raw(&["SENTINEL", "CKQUORUM", &name]).await {
            Ok(Value::Error(e)) => (false, String::from_utf8_lossy(&e).into_owned()),
            Ok(v) => (true, v.as_str().unwrap_or("OK").to_string()),
            Err(e) => (false, e.to_string()),
        };
        out.push(SentinelMaster {
            addr: format!("{}:{}", text("ip"), text("port")),
            flags: text("flags"),
            quorum: num("quorum"),
            other_sentinels: num("num-other-sentinels"),
            replicas: num("num-slaves"),
            ckquorum_ok,
            ckquorum,
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Polls every `proxy.node_poll_interval_ms` (read again after each poll, so a reload
/// changes it) until shutdown.
pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let snapshot = collect(&plane).await;
        debug!(
            nodes = snapshot.nodes.len(),
            ms = snapshot.poll_ms,
            "nodes polled"
        );
        plane.facts.store(snapshot);
        let every = plane.node_poll_interval();
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
