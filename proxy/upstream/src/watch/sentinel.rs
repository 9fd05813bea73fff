//! Sentinel mode: each shard is a master group that Sentinel watches. Masters are learned from
//! `SENTINEL get-master-addr-by-name`, confirmed with `ROLE`, and followed through
//! `+switch-master` on every sentinel, with a periodic re-check as a safety net.

use std::sync::Arc;
use std::time::Duration;

use hive_common::addr;
use hive_common::resp::Value;
use hive_common::topology::{Shard, ShardMap};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::conn::control::QueryError;
use crate::stats::UpstreamStats;
use crate::topology::NO_MASTER;
use crate::Backplane;

/// The Sentinel master names, in shard order: `hive.toml`'s, or the deployment's slot map's.
pub fn group_names(plane: &Backplane) -> Vec<String> {
    plane.layout.load().names.clone()
}

/// Asks the sentinels in order for `name`'s master and returns the first one the node itself
/// confirms with `ROLE`, with the replicas Sentinel reports. A sentinel that is down, slow or
/// stale is skipped.
pub async fn discover(plane: &Backplane, name: &str) -> Result<(String, Vec<String>), String> {
    let cfg = &plane.config;
    let mut why = Vec::new();
    for s in &cfg.sentinels {
        match ask_sentinel(plane, s, name).await {
            Ok(Some((master, replicas))) => match confirm_master(plane, &master).await {
                Ok(()) => return Ok((master, replicas)),
                Err(e) => {
                    warn!(sentinel = %s, group = %name, %master, reason = %e, "refusing the reported master");
                    why.push(format!("{s} reports {master}, which {e}"));
                }
            },
            Ok(None) => why.push(format!("{s} does not know master '{name}'")),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(why.join("; "))
}

async fn ask_sentinel(
    plane: &Backplane,
    sentinel: &str,
    name: &str,
) -> Result<Option<(String, Vec<String>)>, QueryError> {
    let auth = plane.config.sentinel_auth();
    let mut c = plane.connector.control(sentinel, auth.as_ref()).await?;
    let v = c
        .call(&["SENTINEL", "get-master-addr-by-name", name])
        .await?;
    let Some([host, port]) = v.as_array().and_then(|a| <&[Value; 2]>::try_from(a).ok()) else {
        return Ok(None);
    };
    let (Some(host), Some(port)) = (host.as_str(), port.as_str()) else {
        return Ok(None);
    };
    let replicas = match c.call(&["SENTINEL", "replicas", name]).await {
        Ok(v) => healthy_replicas(&v),
        Err(_) => Vec::new(),
    };
    Ok(Some((addr::join(host, port), replicas)))
}

/// Replicas from a `SENTINEL replicas` reply that Sentinel does not consider down.
fn healthy_replicas(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&[])
        .iter()
        .filter(|r| {
            let flags = r.field("flags").and_then(Value::as_str).unwrap_or("");
            !flags
                .split(',')
                .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
        })
        .filter_map(|r| {
            let ip = r.field("ip")?.as_str()?;
            let port = r.field("port")?.as_str()?;
            Some(addr::join(ip, port))
        })
        .collect()
}

/// `Ok` when the node answers `ROLE` as a master; it is never written to otherwise.
pub async fn confirm_master(plane: &Backplane, addr: &str) -> Result<(), String> {
    let auth = plane.config.node_auth();
    let mut c = plane
        .connector
        .control(addr, auth.as_ref())
        .await
        .map_err(|e| format!("cannot be reached ({e})"))?;
    let v = c
        .call(&["ROLE"])
        .await
        .map_err(|e| format!("did not answer ROLE ({e})"))?;
    match v.as_array().and_then(|a| a.first()).and_then(Value::as_str) {
        Some("master") => Ok(()),
        Some(role) => Err(format!("says it is a {role}")),
        None => Err("gave a malformed ROLE reply".into()),
    }
}

/// Re-discovers every group and installs the result. A group whose master cannot be confirmed
/// keeps its current master while that one still says it is a master; otherwise its requests
/// wait (`NO_MASTER`). Returns whether every group has a master.
pub async fn refresh_all(plane: &Backplane) -> bool {
    UpstreamStats::add(&plane.stats.topology_refreshes, 1);
    let generation = plane.topology.generation();
    let current = plane.topology.load_full();
    let layout = plane.layout.load_full();
    let names = layout.names.clone();
    let ranges = layout.ranges.clone();
    let mut entries = Vec::with_capacity(names.len());
    let mut complete = true;
    for (i, name) in names.iter().enumerate() {
        if plane.topology.failing_over(i) {
            // Sentinel is moving this group's master: keep its requests waiting, unless the
            // replica it chose already reported its promotion (the failover push).
            let promoted = plane.topology.promoted(i);
            complete &= promoted.is_some();
            let replicas = match current.map.shards().get(i) {
                Some(s) if promoted.is_some() => s.replicas.clone(),
                _ => Vec::new(),
            };
            entries.push((
                Shard {
                    master: promoted.unwrap_or_else(|| NO_MASTER.into()),
                    replicas,
                },
                ranges.get(i).cloned().unwrap_or_default(),
            ));
            continue;
        }
        let shard = match discover(plane, name).await {
            Ok((master, replicas)) => Shard { master, replicas },
            Err(why) => {
                let kept = match current.map.shards().get(i) {
                    Some(s)
                        if s.master != NO_MASTER
                            && confirm_master(plane, &s.master).await.is_ok() =>
                    {
                        Some(s.clone())
                    }
                    _ => None,
                };
                warn!(group = %name, %why, kept = kept.is_some(), "no sentinel gave a confirmed master");
                complete &= kept.is_some();
                kept.unwrap_or(Shard {
                    master: NO_MASTER.into(),
                    replicas: Vec::new(),
                })
            }
        };
        entries.push((shard, ranges.get(i).cloned().unwrap_or_default()));
    }
    match ShardMap::new(entries) {
        Ok(map) => {
            if map != current.map && plane.topology.install_if(generation, map.clone(), names) {
                info!(masters = ?map.shards().iter().map(|s| &s.master).collect::<Vec<_>>(), "sentinel topology installed");
            }
        }
        Err(e) => warn!(error = %e, "sentinel topology rejected"),
    }
    complete
}

/// Puts `master` in place for group `i` (after a confirmed `+switch-master`), or takes it out
/// (`NO_MASTER`, when Sentinel agrees it is down) so requests wait instead of failing.
fn set_master(plane: &Backplane, i: usize, master: &str) {
    let cur = plane.topology.load_full();
    let Some(shard) = cur.map.shards().get(i) else {
        return;
    };
    if shard.master == master {
        return;
    }
    let map = cur
        .map
        .with_master(i, master.to_string(), shard.replicas.clone());
    let generation = plane.topology.generation();
    plane
        .topology
        .install_if(generation, map, cur.names.clone());
    info!(group = %cur.shard_name(i), %master, "group master changed");
}

/// hive-module on `addr` reported that it became a master. During a failover of its group,
/// if it is the replica Sentinel selected (or, with no selection seen, one of the group's
/// replicas) and `ROLE` confirms it, it takes the group's writes at once instead of after
/// `+switch-master`. Returns whether it did.
pub async fn on_promoted(plane: &Backplane, addr: &str) -> bool {
    let cur = plane.topology.load_full();
    let Some(i) = (0..cur.map.shards().len()).find(|&i| {
        plane.topology.failing_over(i)
            && match plane.topology.selected(i) {
                Some(sel) => sel == addr,
                None => cur.map.shards()[i].replicas.iter().any(|r| r == addr),
            }
    }) else {
        plane.refresh.notify_one();
        return false;
    };
    if cur.map.shards()[i].master == addr {
        // Already followed (the reconnect after Sentinel's CLIENT KILL, then the event).
        return false;
    }
    if let Err(e) = confirm_master(plane, addr).await {
        warn!(%addr, reason = %e, "promotion pushed by hive-module not confirmed");
        return false;
    }
    plane.topology.promote(i, addr);
    set_master(plane, i, addr);
    true
}

/// Runs the watchers (one per sentinel) and the periodic re-check until shutdown.
pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    for s in plane.config.sentinels.clone() {
        tokio::spawn(watch_sentinel(plane.clone(), s, shutdown.clone()));
    }
    let interval = Duration::from_millis(plane.config.refresh_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = plane.refresh.notified() => {}
            _ = shutdown.changed() => return,
        }
        refresh_all(&plane).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows one sentinel's events, reconnecting whenever it goes away.
async fn watch_sentinel(
    plane: Arc<Backplane>,
    sentinel: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = follow(&plane, &sentinel) => {
                warn!(%sentinel, error = %r, "sentinel event stream lost; reconnecting");
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The events followed. `+selected-slave` and `+failover-state-send-slaveof-noone` come one
/// Sentinel tick before the replica is promoted: holding writes from then on keeps them off the
/// old master, which would accept and later lose them.
const CHANNELS: [&str; 11] = [
    "SUBSCRIBE",
    "+switch-master",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
    "+odown",
    "-odown",
    "+sdown",
    "-sdown",
];

/// Returns only on error: the reason the event stream ended.
async fn follow(plane: &Backplane, sentinel: &str) -> String {
    let cfg = &plane.config;
    let auth = cfg.sentinel_auth();
    let mut c = match plane.connector.control(sentinel, auth.as_ref()).await {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = c.send(&CHANNELS).await {
        return e.to_string();
    }
    // A sentinel that stops answering PING within two periods is treated as gone.
    let mut unanswered = 0;
    loop {
        let v = match c.read(Duration::from_secs(2)).await {
            Ok(v) => v,
            Err(QueryError::Timeout { .. }) if unanswered == 0 => {
                unanswered += 1;
                if let Err(e) = c.send(&["PING"]).await {
                    return e.to_string();
                }
                continue;
            }
            Err(e) => return e.to_string(),
        };
        unanswered = 0;
        let Some([kind, channel, payload]) =
            v.as_array().and_then(|a| <&[Value; 3]>::try_from(a).ok())
        else {
            continue;
        };
        if kind.as_str() != Some("message") {
            continue;
        }
        let (Some(channel), Some(payload)) = (channel.as_str(), payload.as_str()) else {
            continue;
        };
        on_event(plane, sentinel, channel, payload).await;
    }
}

async fn on_event(plane: &Backplane, sentinel: &str, channel: &str, payload: &str) {
    let names = group_names(plane);
    let words: Vec<&str> = payload.split(' ').collect();
    info!(%sentinel, event = %channel, %payload, "sentinel event");
    UpstreamStats::add(&plane.stats.sentinel_events, 1);
    match channel {
        // `<name> <old-ip> <old-port> <new-ip> <new-port>`
        "+switch-master" => {
            let Some(i) = words
                .first()
                .and_then(|n| names.iter().position(|x| x == n))
            else {
                return;
            };
            let (Some(ip), Some(port)) = (words.get(3), words.get(4)) else {
                return;
            };
            let addr = addr::join(ip, port);
            match confirm_master(plane, &addr).await {
                Ok(()) => {
                    plane.topology.set_failover(i, None);
                    set_master(plane, i, &addr);
                }
                Err(e) => {
                    warn!(%addr, reason = %e, "+switch-master names a node that is not a master yet");
                    plane.refresh.notify_one();
                }
            }
        }
        // `slave <ip:port> <ip> <port> @ <name> <master-ip> <master-port>` (and the
        // `master <name> ...` form): the leader is about to promote a replica.
        "+selected-slave" | "+failover-state-send-slaveof-noone" => {
            let Some(i) = event_group(&words, &names) else {
                return;
            };
            let hold = Duration::from_millis(plane.config.failover_hold_ms);
            plane
                .topology
                .set_failover(i, Some(std::time::Instant::now() + hold));
            if let (Some(&"slave"), Some(replica)) = (words.first(), words.get(1)) {
                plane.topology.select_replica(i, replica);
            }
            // The push may have come first: the promoted replica stays in place.
            let master = plane.topology.promoted(i);
            set_master(plane, i, master.as_deref().unwrap_or(NO_MASTER));
        }
        // Only an abort ends the hold early: `+failover-end` comes before `+switch-master`,
        // while the old master still takes writes.
        "-failover-abort-not-elected"
        | "-failover-abort-no-good-slave"
        | "-failover-abort-slave-timeout" => {
            if let Some(i) = event_group(&words, &names) {
                plane.topology.set_failover(i, None);
            }
            plane.refresh.notify_one();
        }
        // `master <name> <ip> <port> #quorum n/m`: Sentinel agrees the master is down, so
        // requests wait for the new one instead of failing against the dead one.
        "+odown" if words.first() == Some(&"master") => {
            let (Some(name), Some(ip), Some(port)) = (words.get(1), words.get(2), words.get(3))
            else {
                return;
            };
            let Some(i) = names.iter().position(|x| x == name) else {
                return;
            };
            let down = addr::join(ip, port);
            let cur = plane.topology.load();
            if cur.map.shards().get(i).is_some_and(|s| s.master == down) {
                drop(cur);
                set_master(plane, i, NO_MASTER);
            }
        }
        "-odown" | "-sdown" => plane.refresh.notify_one(),
        _ => {}
    }
}

/// The group an instance-details payload names: `master <name> ...` or `... @ <name> ...`.
fn event_group(words: &[&str], names: &[String]) -> Option<usize> {
    let name = match words.first() {
        Some(&"master") => words.get(1)?,
        _ => words
            .iter()
            .position(|w| *w == "@")
            .and_then(|at| words.get(at + 1))?,
    };
    names.iter().position(|n| n == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn event_group_reads_both_payload_forms() {
        let names = vec!["a".to_string(), "b".to_string()];
        let w: Vec<&str> = "slave 127.0.0.1:7003 127.0.0.1 7003 @ b 127.0.0.1 7002"
            .split(' ')
            .collect();
        assert_eq!(event_group(&w, &names), Some(1));
        let w: Vec<&str> = "master a 127.0.0.1 7000".split(' ').collect();
        assert_eq!(event_group(&w, &names), Some(0));
        let w: Vec<&str> = "master zz 127.0.0.1 7000".split(' ').collect();
        assert_eq!(event_group(&w, &names), None);
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn healthy_replicas_skips_down_ones() {
        let entry = |ip: &str, port: &str, flags: &str| {
            Value::Array(vec![
                bulk("ip"),
                bulk(ip),
                bulk("port"),
                bulk(port),
                bulk("flags"),
                bulk(flags),
            ])
        };
        let v = Value::Array(vec![
            entry("127.0.0.1", "7003", "slave"),
            entry("127.0.0.1", "7004", "s_down,slave,disconnected"),
            entry("127.0.0.1", "7005", "slave,o_down"),
        ]);
        assert_eq!(healthy_replicas(&v), vec!["127.0.0.1:7003".to_string()]);
    }
}
