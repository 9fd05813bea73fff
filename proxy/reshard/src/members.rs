//! Nodes joining and leaving: `add-shard` checks every new node first (a cluster node, empty,
//! in no other cluster), then CLUSTER MEET and REPLICATE; `remove-shard`, once its master is
//! drained, has every other node FORGET the group and resets the group's nodes so that gossip
//! cannot bring them back.

use std::time::{Duration, Instant};

use hive_common::info;
use serde::Serialize;

use crate::error::{ReshardError, Result};
use crate::session::Session;
use crate::view::{parse_nodes, View};

#[derive(Debug, Clone, Serialize)]
pub struct Joined {
    pub master: String,
    pub master_id: String,
    pub replicas: Vec<String>,
}

/// `host:port` with the host resolved to an IP (CLUSTER MEET takes an address).
async fn resolve(addr: &str) -> Result<(String, u16)> {
    let sock = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ReshardError::Input(format!("{addr}: cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| ReshardError::Input(format!("{addr}: no address")))?;
    Ok((sock.ip().to_string(), sock.port()))
}

/// Why `addr` cannot join, if it cannot: not in cluster mode, holding keys or slots, or a
/// member of a cluster (this one or another).
async fn refuse_joiner(s: &mut Session, view: &View, addr: &str) -> Result<String> {
    let i = s.text(addr, &["INFO", "cluster"]).await?;
    if info::field(&i, "cluster_enabled") != Some("1") {
        return Err(ReshardError::Input(format!(
            "{addr}: not a cluster node (cluster-enabled no)"
        )));
    }
    let id = s.text(addr, &["CLUSTER", "MYID"]).await?;
    if view.node(&id).is_some() {
        return Err(ReshardError::Input(format!(
            "{addr}: already a member of this cluster"
        )));
    }
    let ci = s.text(addr, &["CLUSTER", "INFO"]).await?;
    let known: u64 = info::field(&ci, "cluster_known_nodes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let assigned: u64 = info::field(&ci, "cluster_slots_assigned")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if known > 1 || assigned > 0 {
        return Err(ReshardError::Input(format!(
            "{addr}: belongs to another cluster ({known} nodes known, {assigned} slots); run CLUSTER RESET on it first"
        )));
    }
    let keys = s.int(addr, &["DBSIZE"]).await?;
    if keys > 0 {
        return Err(ReshardError::Input(format!(
            "{addr}: holds {keys} keys; only an empty node can join"
        )));
    }
    Ok(id)
}

/// Checks that `master` and `replicas` may join (see `refuse_joiner`); their addresses with
/// their node ids, master first. Changes nothing.
pub async fn check_joiners(
    s: &mut Session,
    view: &View,
    master: &str,
    replicas: &[String],
) -> Result<Vec<(String, String)>> {
    let mut joiners: Vec<(String, String)> = Vec::new();
    for a in std::iter::once(master).chain(replicas.iter().map(String::as_str)) {
        if joiners.iter().any(|(x, _)| x == a) {
            return Err(ReshardError::Input(format!("{a}: named twice")));
        }
        let id = refuse_joiner(s, view, a).await?;
        joiners.push((a.to_string(), id));
    }
    Ok(joiners)
}

/// Adds `master` (and `replicas` under it) to the cluster; every node is checked before the
/// first change.
pub async fn add_shard(
    s: &mut Session,
    view: &View,
    master: &str,
    replicas: &[String],
    limit: Duration,
) -> Result<Joined> {
    let seed = view
        .masters()
        .first()
        .map(|m| m.addr.clone())
        .ok_or_else(|| ReshardError::Unsettled("the cluster has no master up".into()))?;
    let joiners = check_joiners(s, view, master, replicas).await?;
    for (a, _) in &joiners {
        let (ip, port) = resolve(a).await?;
        s.call(&seed, &["CLUSTER", "MEET", &ip, &port.to_string()])
            .await?;
    }
    let mut everyone: Vec<(String, String)> = view
        .nodes
        .iter()
        .filter(|n| !n.failed)
        .map(|n| (n.addr.clone(), n.id.clone()))
        .collect();
    everyone.extend(joiners.iter().cloned());
    let ids: Vec<String> = everyone.iter().map(|(_, id)| id.clone()).collect();
    wait_known(s, &everyone, &ids, limit).await?;
    let master_id = joiners[0].1.clone();
    let deadline = Instant::now() + limit;
    for (a, _) in &joiners[1..] {
        // A replica accepts REPLICATE once gossip has told it of its master.
        loop {
            match s.call(a, &["CLUSTER", "REPLICATE", &master_id]).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    // A node that just joined answers CLUSTERDOWN (a MIGRATE to it fails) until it has the
    // whole slot map.
    let joined: Vec<String> = joiners.iter().map(|(a, _)| a.clone()).collect();
    let ok = |t: &str| info::field(t, "cluster_state") == Some("ok");
    until_each(
        s,
        &joined,
        &["CLUSTER", "INFO"],
        ok,
        "cluster_state is not ok",
        deadline,
    )
    .await?;
    let all: Vec<String> = everyone.iter().map(|(a, _)| a.clone()).collect();
    let replica_ids: Vec<String> = joiners[1..].iter().map(|(_, id)| id.clone()).collect();
    // Every node must see the replicas as replicas before a plan counts the masters.
    loop {
        let mut seen = true;
        for a in &all {
            let nodes = parse_nodes(&s.text(a, &["CLUSTER", "NODES"]).await?).map_err(|why| {
                ReshardError::Reply {
                    addr: a.clone(),
                    why,
                }
            })?;
            seen &= replica_ids.iter().all(|r| {
                nodes.iter().any(|n| {
                    n.id == *r && !n.master && n.master_id.as_deref() == Some(master_id.as_str())
                })
            });
        }
        if seen {
            break;
        }
        if Instant::now() >= deadline {
            return Err(ReshardError::Unsettled(format!(
                "the new replicas are not known as replicas of {master} after {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = |t: &str| info::replication(t).link_up;
    let why = format!("its link to {master} is not up");
    until_each(
        s,
        &joined[1..],
        &["INFO", "replication"],
        up,
        &why,
        deadline,
    )
    .await?;
    Ok(Joined {
        master: master.into(),
        master_id,
        replicas: replicas.to_vec(),
    })
}

/// Polls `args` on each of `addrs` in turn until `ok` holds for its reply; past `deadline`,
/// fails naming the node and `what` is wrong.
async fn until_each(
    s: &mut Session,
    addrs: &[String],
    args: &[&str],
    ok: impl Fn(&str) -> bool,
    what: &str,
    deadline: Instant,
) -> Result<()> {
    for a in addrs {
        while !ok(&s.text(a, args).await?) {
            if Instant::now() >= deadline {
                return Err(ReshardError::Reply {
                    addr: a.clone(),
                    why: format!("{what} in time"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Waits until every node of `nodes` knows every id of `ids` (no handshake left).
async fn wait_known(
    s: &mut Session,
    nodes: &[(String, String)],
    ids: &[String],
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = true;
        for (addr, _) in nodes {
            let known =
                parse_nodes(&s.text(addr, &["CLUSTER", "NODES"]).await?).map_err(|why| {
                    ReshardError::Reply {
                        addr: addr.clone(),
                        why,
                    }
                })?;
            if !ids
                .iter()
                .all(|id| known.iter().any(|n| n.id == *id && !n.failed))
            {
                all = false;
                break;
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ReshardError::Unsettled(format!(
                "timed out after {limit:?} waiting for every node to know the new ones"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes of a shard: its master and the replicas it has now (ids), recorded before the
/// drain, because a master whose last slot leaves turns into a replica of the slot's new owner.
pub fn shard_of(view: &View, master_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = view
        .replicas_of(master_id)
        .iter()
        .map(|n| n.id.clone())
        .collect();
    ids.push(master_id.to_string());
    ids
}

/// After its master was drained: every other node forgets the shard's nodes (replicas first),
/// then those are reset so they cannot gossip their way back.
pub async fn forget_shard(
    s: &mut Session,
    view: &View,
    shard: &[String],
    limit: Duration,
) -> Result<Vec<String>> {
    let mut leaving: Vec<(String, String)> = Vec::new();
    for id in shard {
        let n = view
            .node(id)
            .ok_or_else(|| ReshardError::Input(format!("{id}: not a node of this cluster")))?;
        let held = view.claims.get(id).map_or(n.slots.len(), Vec::len);
        if n.master && held > 0 {
            return Err(ReshardError::Input(format!(
                "{}: still holds {held} slots",
                n.addr
            )));
        }
        leaving.push((n.id.clone(), n.addr.clone()));
    }
    let staying: Vec<String> = view
        .nodes
        .iter()
        .filter(|n| !n.failed && !leaving.iter().any(|(id, _)| *id == n.id))
        .map(|n| n.addr.clone())
        .collect();
    for (id, _) in &leaving {
        for addr in &staying {
            match s.call(addr, &["CLUSTER", "FORGET", id]).await {
                Ok(_) => {}
                Err(ReshardError::Node(e)) if e.to_string().contains("Unknown node") => {}
                Err(e) => return Err(e),
            }
        }
    }
    for (_, addr) in &leaving {
        // A node already stopped has nothing to reset.
        let _ = s.call(addr, &["CLUSTER", "RESET", "SOFT"]).await;
    }
    let deadline = Instant::now() + limit;
    'wait: loop {
        for addr in &staying {
            let t = s.text(addr, &["CLUSTER", "NODES"]).await?;
            if leaving.iter().any(|(id, _)| t.contains(id.as_str())) {
                if Instant::now() >= deadline {
                    return Err(ReshardError::Unsettled(format!(
                        "{addr} still lists the removed nodes after {limit:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            }
        }
        break;
    }
    Ok(leaving.into_iter().map(|(_, a)| a).collect())
}
