//! The replica poller: every `backend.replica_poll_interval_ms`, the offset of every master and
//! the state of every replica (INFO replication + persistence, `HIVE.LAG` where the module is
//! loaded), each bounded by the interval, judged by `lag` into a new `ReadMap`. It idles until
//! someone reads from replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use hive_common::info;
use tokio::sync::watch;
use tracing::debug;

use crate::config::ReadFrom;
use crate::conn::control::{ControlConn, QueryError};
use crate::replicas::lag::{judge, History, Probe};
use crate::replicas::{FreshReplica, ReadMap, ReplicaView};
use crate::topology::NO_MASTER;
use crate::Backplane;

/// The shortest a probe may take before its node counts as not answering.
pub const PROBE_TIMEOUT_MIN: Duration = Duration::from_millis(250);

/// A node's connection, kept across polls, and whether it has hive-module (`None`: not known).
#[derive(Default)]
struct Node {
    conn: Option<ControlConn>,
    module: Option<bool>,
}

#[derive(Default)]
struct Poller {
    nodes: HashMap<String, Node>,
    /// Offset samples per master address.
    history: HashMap<String, History>,
}

/// What one node said this round.
enum Answer {
    Master { at: u64, offset: i64 },
    Replica(Probe),
    None,
}

pub async fn run(plane: Arc<Backplane>, mut shutdown: watch::Receiver<bool>) {
    if plane.live.load().read_from != ReadFrom::Master {
        plane.reads.want();
    }
    tokio::select! {
        _ = plane.reads.until_wanted() => {}
        _ = shutdown.changed() => return,
    }
    let mut poller = Poller::default();
    loop {
        let cfg = plane.live.load();
        let interval = Duration::from_millis(cfg.replica_poll_interval_ms);
        let max_lag = cfg.max_replica_lag_ms;
        drop(cfg);
        let started = tokio::time::Instant::now();
        let map = poller.once(&plane, interval, max_lag).await;
        plane.reads.store(map);
        tokio::select! {
            _ = tokio::time::sleep_until(started + interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl Poller {
    async fn once(&mut self, plane: &Backplane, interval: Duration, max_lag: u64) -> ReadMap {
        let topo = plane.topology.load_full();
        let clock = crate::stats::clock();
        let mut roles: HashMap<String, bool> = HashMap::new();
        for s in topo.map.shards() {
            if s.master != NO_MASTER {
                roles.insert(s.master.clone(), true);
            }
            for r in &s.replicas {
                roles.entry(r.clone()).or_insert(false);
            }
        }
        self.nodes.retain(|a, _| roles.contains_key(a));
        self.history
            .retain(|a, _| roles.get(a).copied().unwrap_or(false));
        for a in roles.keys() {
            self.nodes.entry(a.clone()).or_default();
        }
        // Probes may take the interval (a frozen replica must not stall the next round), and at
        // least 250 ms, so a busy but healthy node is not dropped for a slow answer.
        let limit = interval.max(PROBE_TIMEOUT_MIN);
        let probes = self.nodes.iter_mut().map(|(addr, node)| {
            let master = roles.get(addr).copied().unwrap_or(false);
            async move {
                let fut = probe(plane, addr, node, master, clock);
                match tokio::time::timeout(limit, fut).await {
                    Ok(Ok(a)) => (addr.clone(), a),
                    Ok(Err(e)) => {
                        debug!(%addr, error = %e, "replica poll failed");
                        node.conn = None;
                        (addr.clone(), Answer::None)
                    }
                    Err(_) => {
                        // A reply may still come: the connection is out of step, start again.
                        node.conn = None;
                        (addr.clone(), Answer::None)
                    }
                }
            }
        });
        let answers: HashMap<String, Answer> = join_all(probes).await.into_iter().collect();
        let cap = (max_lag / interval.as_millis().max(1) as u64) as usize + 8;
        for (addr, a) in &answers {
            if let Answer::Master { at, offset } = a {
                self.history
                    .entry(addr.clone())
                    .or_insert_with(|| History::new(cap.min(4096)))
                    .push(*at, *offset);
            }
        }
        let now = clock.raw();
        let mut map = ReadMap {
            built_from: Some(topo.clone()),
            shards: Vec::with_capacity(topo.map.shards().len()),
            views: Vec::new(),
        };
        for (i, s) in topo.map.shards().iter().enumerate() {
            let history = self.history.get(&s.master);
            let mut fresh = Vec::new();
            for r in &s.replicas {
                let p = match answers.get(r) {
                    Some(Answer::Replica(p)) => p.clone(),
                    _ => Probe::default(),
                };
                let covers = history.and_then(|h| h.covers(p.offset));
                let offset_lag = covers.map(|c| clock.delta(c, now).as_millis() as u64);
                let verdict = judge(&p, offset_lag, max_lag);
                if let Ok(lag) = verdict {
                    fresh.push(FreshReplica {
                        addr: r.as_str().into(),
                        covers: covers.unwrap_or(0),
                        lag_ms: lag,
                    });
                }
                map.views.push(ReplicaView {
                    shard: i,
                    addr: r.clone(),
                    lag_ms: p.module_lag_ms.or(offset_lag),
                    stale: verdict.err().map(|s| s.as_str()),
                });
            }
            map.shards.push(fresh);
        }
        map
    }
}

/// One node's answer: a master's offset (with the time just before it was asked), or a
/// replica's probe.
async fn probe(
    plane: &Backplane,
    addr: &str,
    node: &mut Node,
    master: bool,
    clock: &quanta::Clock,
) -> Result<Answer, QueryError> {
    if node.conn.is_none() {
        let auth = plane.config.node_auth();
        node.conn = Some(plane.connector.control(addr, auth.as_ref()).await?);
    }
    let Some(c) = node.conn.as_mut() else {
        return Ok(Answer::None);
    };
    if master {
        let at = clock.raw();
        let text = c.call(&["INFO", "replication"]).await?;
        let repl = info::replication(text.as_str().unwrap_or(""));
        return Ok(Answer::Master {
            at,
            offset: repl.offset,
        });
    }
    let v = c.call(&["INFO", "replication", "persistence"]).await?;
    let text = v.as_str().unwrap_or("");
    let repl = info::replication(text);
    let f = info::fields(text);
    let mut p = Probe {
        answered: true,
        replica: repl.role == "replica",
        link_up: repl.link_up,
        loading: f.get("loading") == Some(&"1") || f.get("master_sync_in_progress") == Some(&"1"),
        offset: repl.offset,
        module_lag_ms: None,
    };
    if node.module != Some(false) {
        match c.call(&["HIVE.LAG"]).await {
            Ok(v) => {
                node.module = Some(true);
                p.module_lag_ms = v
                    .field("lag_ms")
                    .and_then(|l| l.as_int())
                    .map(|l| l.max(0) as u64);
            }
            Err(QueryError::Redis { .. }) => node.module = Some(false),
            Err(e) => return Err(e),
        }
    }
    Ok(Answer::Replica(p))
}
