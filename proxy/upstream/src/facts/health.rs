//! The health rules over a `Snapshot`, shared by `hive status` (its exit code), `hive monitor`
//! (its banner), `hive check` and `/readyz`. The Prometheus alert rules in `deploy/` state the
//! same conditions over the same numbers.

use serde::Serialize;

use super::Snapshot;
use hive_common::SLOT_COUNT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Degraded,
    Down,
}

impl Health {
    /// `hive status`'s exit code: 0 healthy, 1 degraded, 2 down.
    pub fn exit_code(self) -> i32 {
        self as i32
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}

/// One thing wrong, and about what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub subject: String,
    pub what: String,
}

/// The limits the rules compare with.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Replicas each master should have (a master with fewer is a finding).
    pub expected_replicas: usize,
    pub max_lag_ms: u64,
    /// Used memory over maxmemory above which a node is a finding.
    pub memory_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            expected_replicas: 1,
            max_lag_ms: 1000,
            memory_ratio: 0.9,
        }
    }
}

/// The deployment's health and every finding behind it.
pub fn evaluate(s: &Snapshot, t: &Thresholds) -> (Health, Vec<Finding>) {
    let mut f = Vec::new();
    let mut push = |severity, subject: &str, what: String| {
        f.push(Finding {
            severity,
            subject: subject.to_string(),
            what,
        })
    };
    if s.shards.is_empty() {
        push(Severity::Critical, "topology", "no shard is known".into());
        return (Health::Down, f);
    }
    let masters_up = (0..s.shards.len()).filter(|&i| s.master_up(i)).count();
    for (i, shard) in s.shards.iter().enumerate() {
        if !s.master_up(i) {
            push(
                Severity::Critical,
                &shard.name,
                format!("no reachable master (slots {})", shard.slots.join(",")),
            );
        }
        let up = shard
            .replicas
            .iter()
            .filter(|r| s.node(r).is_some_and(|n| n.up && n.role == "replica"))
            .count();
        if up < t.expected_replicas {
            push(
                Severity::Critical,
                &shard.name,
                format!("{up} replica(s) up, {} expected", t.expected_replicas),
            );
        }
    }
    if s.slots_covered < SLOT_COUNT as usize {
        push(
            Severity::Critical,
            "slots",
            format!("{} of {SLOT_COUNT} slots served", s.slots_covered),
        );
    }
    for n in &s.nodes {
        let a = n.addr.as_str();
        if !n.up {
            let why = n.error.clone().unwrap_or_default();
            push(Severity::Warning, a, format!("unreachable: {why}"));
            continue;
        }
        if n.role != n.expected_role {
            push(
                Severity::Warning,
                a,
                format!("reports {} but is routed as {}", n.role, n.expected_role),
            );
        }
        if n.master_link_up == Some(false) {
            push(Severity::Warning, a, "link to its master is down".into());
        }
        if let Some(lag) = n.lag_ms.filter(|l| *l > t.max_lag_ms) {
            push(
                Severity::Warning,
                a,
                format!("replication lag {lag} ms (limit {} ms)", t.max_lag_ms),
            );
        }
        if n.maxmemory > 0 && n.used_memory as f64 > n.maxmemory as f64 * t.memory_ratio {
            push(
                Severity::Warning,
                a,
                format!(
                    "memory {} of {} bytes (over {:.0}%)",
                    n.used_memory,
                    n.maxmemory,
                    t.memory_ratio * 100.0
                ),
            );
        }
        if !n.rdb_last_bgsave_ok {
            push(Severity::Warning, a, "last RDB save failed".into());
        }
        if n.aof_enabled && !n.aof_last_write_ok {
            push(Severity::Warning, a, "last AOF write failed".into());
        }
        if n.loading {
            push(Severity::Warning, a, "loading its dataset".into());
        }
    }
    for sen in &s.sentinels {
        if !sen.up {
            let why = sen.error.clone().unwrap_or_default();
            push(
                Severity::Warning,
                &sen.addr,
                format!("sentinel unreachable: {why}"),
            );
            continue;
        }
        for m in sen.masters.iter().filter(|m| !m.ckquorum_ok) {
            push(
                Severity::Critical,
                &sen.addr,
                format!("{}: {}", m.name, m.ckquorum),
            );
        }
    }
    let health = if masters_up == 0 {
        Health::Down
    } else if f.is_empty() {
        Health::Ok
    } else {
        Health::Degraded
    };
    (health, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{NodeFacts, ShardFacts};

    fn snapshot() -> Snapshot {
        let node = |addr: &str, role: &str| NodeFacts {
            addr: addr.into(),
            up: true,
            role: role.into(),
            expected_role: role.into(),
            rdb_last_bgsave_ok: true,
            aof_last_write_ok: true,
            ..NodeFacts::default()
        };
        Snapshot {
            shards: vec![ShardFacts {
                name: "a".into(),
                label: "slots:0".into(),
                master: "m:1".into(),
                replicas: vec!["r:1".into()],
                slots: vec!["0-16383".into()],
                slot_count: 16384,
            }],
            nodes: vec![node("m:1", "master"), node("r:1", "replica")],
            slots_covered: 16384,
            slots_assigned: 16384,
            ..Snapshot::default()
        }
    }

    #[test]
    fn health_ok_when_nothing_is_wrong() {
        let (h, f) = evaluate(&snapshot(), &Thresholds::default());
        assert_eq!((h, f), (Health::Ok, vec![]));
    }

    #[test]
    fn health_degraded_on_a_lagging_replica_and_down_without_masters() {
        let mut s = snapshot();
        s.nodes[1].lag_ms = Some(1500);
        let (h, f) = evaluate(&s, &Thresholds::default());
        assert_eq!(h, Health::Degraded);
        assert!(f[0].what.contains("lag 1500 ms"), "{f:?}");
        s.nodes[0].up = false;
        s.slots_covered = 0;
        let (h, f) = evaluate(&s, &Thresholds::default());
        assert_eq!(h, Health::Down);
        assert!(f.iter().any(|f| f.what.starts_with("no reachable master")));
        assert_eq!(h.exit_code(), 2);
    }
}
