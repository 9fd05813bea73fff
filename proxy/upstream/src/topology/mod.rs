//! The routing snapshot (`Topology`) and the cell that holds it: read lock-free per client
//! batch, replaced whole by the task that follows the backend mode (`source`), with the shards
//! that Sentinel is failing over.

pub mod layout;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use hive_common::topology::ShardMap;
use tokio::sync::watch;

use crate::stats::events::FailoverClock;

/// The master address `ShardMap` carries for a shard with no usable master.
pub const NO_MASTER: &str = "";

/// An immutable routing snapshot. Connections are not part of it: each worker thread maps the
/// master addresses to its own connections (`upstream::pool`).
pub struct Topology {
    pub map: ShardMap,
    /// Shard names for messages: Sentinel master names, else the master address.
    pub names: Vec<String>,
    /// `names` were given (Sentinel master names), not the master addresses.
    pub named: bool,
    /// When this map was installed (unix ms; 0 for none): how fast a change was followed.
    pub installed_unix_ms: u64,
}

impl Topology {
    pub fn empty() -> Topology {
        Topology {
            map: ShardMap::empty(),
            names: Vec::new(),
            named: false,
            installed_unix_ms: 0,
        }
    }

    /// The writable masters, in shard order (a shard mid-failover has none).
    pub fn masters(&self) -> Vec<String> {
        self.map
            .shards()
            .iter()
            .map(|s| s.master.clone())
            .filter(|m| m != NO_MASTER)
            .collect()
    }

    /// Whether shard `i` has a writable master (not mid-failover).
    pub fn has_master(&self, i: usize) -> bool {
        self.map
            .shards()
            .get(i)
            .is_some_and(|s| s.master != NO_MASTER)
    }

    pub fn shard_name(&self, i: usize) -> &str {
        self.names.get(i).map(String::as_str).unwrap_or("?")
    }

    /// The metrics' `shard` label: stable across failovers, so a shard's series go on when
    /// its master changes. The Sentinel master name when there is one; otherwise
    /// `slots:<lowest slot>` (the master address would change with every failover).
    pub fn shard_label(&self, i: usize) -> String {
        match self.names.get(i) {
            Some(n) if self.named => n.clone(),
            _ => {
                let lowest = self
                    .map
                    .ranges()
                    .get(i)
                    .and_then(|r| r.iter().map(|r| r.start).min());
                lowest.map_or_else(|| "?".to_string(), |l| format!("slots:{l}"))
            }
        }
    }
}

/// A shard Sentinel is failing over: until when its requests wait, the replica Sentinel chose,
/// and that replica once hive-module reported it promoted (the failover push).
#[derive(Debug, Clone)]
struct Failover {
    until: Instant,
    selected: Option<String>,
    promoted: Option<String>,
}

/// The current `Topology` and how it changes.
pub struct TopologyState {
    current: ArcSwap<Topology>,
    /// Bumped by every install, so a slow refresh cannot overwrite a newer change.
    generation: AtomicU64,
    install_lock: Mutex<()>,
    /// Shards Sentinel is failing over, until when: their requests wait and the periodic
    /// re-check must not reinstate the old master (it still takes writes that would be lost).
    failovers: Mutex<HashMap<usize, Failover>>,
    /// Ticks on every install, so requests waiting for a master retry at once.
    changed: watch::Sender<u64>,
    /// Failovers followed, and how long they took (`/metrics`).
    pub clock: FailoverClock,
    /// Where a node that stopped being a master is reported (its shared connections).
    demotions: std::sync::OnceLock<std::sync::Arc<crate::conn::demote::Demotions>>,
}

impl Default for TopologyState {
    fn default() -> Self {
        TopologyState {
            current: ArcSwap::from_pointee(Topology::empty()),
            generation: AtomicU64::new(0),
            install_lock: Mutex::new(()),
            failovers: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
            clock: FailoverClock::default(),
            demotions: std::sync::OnceLock::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TopologyState {
    /// The current snapshot, without a reference-count update (once per client batch).
    pub fn load(&self) -> Guard<Arc<Topology>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Marks shard `i` as failing over until `until` (`None` clears it).
    pub fn set_failover(&self, i: usize, until: Option<Instant>) {
        let mut f = lock(&self.failovers);
        match until {
            Some(until) => {
                f.entry(i)
                    .and_modify(|e| e.until = until)
                    .or_insert(Failover {
                        until,
                        selected: None,
                        promoted: None,
                    });
            }
            None => {
                f.remove(&i);
            }
        }
    }

    /// Whether shard `i` is in a failover that has not timed out.
    pub fn failing_over(&self, i: usize) -> bool {
        self.failover(i).is_some()
    }

    fn failover(&self, i: usize) -> Option<Failover> {
        lock(&self.failovers)
            .get(&i)
            .filter(|f| Instant::now() < f.until)
            .cloned()
    }

    /// Records the replica Sentinel selected for shard `i`'s failover.
    pub fn select_replica(&self, i: usize, addr: &str) {
        if let Some(f) = lock(&self.failovers).get_mut(&i) {
            f.selected = Some(addr.to_string());
        }
    }

    /// The replica Sentinel selected, while shard `i` fails over.
    pub fn selected(&self, i: usize) -> Option<String> {
        self.failover(i).and_then(|f| f.selected)
    }

    /// Records that `addr` reported its promotion during shard `i`'s failover.
    pub fn promote(&self, i: usize, addr: &str) {
        if let Some(f) = lock(&self.failovers).get_mut(&i) {
            f.promoted = Some(addr.to_string());
        }
    }

    /// The master a push reported for shard `i` while it is failing over.
    pub fn promoted(&self, i: usize) -> Option<String> {
        self.failover(i).and_then(|f| f.promoted)
    }

    /// The current install generation (see `install_if`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs a new shard map. `names` labels the shards (empty: the master addresses).
    pub fn install(&self, map: ShardMap, names: Vec<String>) {
        let _g = lock(&self.install_lock);
        self.store(map, names);
    }

    /// Installs `map` only if nothing was installed since `generation` was read; returns
    /// whether it did.
    pub fn install_if(&self, generation: u64, map: ShardMap, names: Vec<String>) -> bool {
        let _g = lock(&self.install_lock);
        if self.generation() != generation {
            return false;
        }
        self.store(map, names);
        true
    }

    fn store(&self, map: ShardMap, names: Vec<String>) {
        let named = names.len() == map.shards().len();
        let names = if named {
            names
        } else {
            map.shards().iter().map(|s| s.master.clone()).collect()
        };
        let old = self.current.load_full();
        self.note_master_changes(&old.map, &map);
        if let Some(d) = self.demotions.get() {
            for s in old.map.shards() {
                let gone =
                    s.master != NO_MASTER && !map.shards().iter().any(|n| n.master == s.master);
                if gone {
                    d.demote(&s.master);
                }
            }
        }
        // Installs are rare (a refresh that found a change), so one clock read here is free.
        let installed_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.current.store(Arc::new(Topology {
            map,
            names,
            named,
            installed_unix_ms,
        }));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
    }

    /// Counts every shard whose slots now have another master (a failover followed).
    fn note_master_changes(&self, old: &ShardMap, new: &ShardMap) {
        for (i, (shard, ranges)) in new.shards().iter().zip(new.ranges()).enumerate() {
            let Some(first) = ranges.first() else {
                continue;
            };
            if shard.master == NO_MASTER {
                continue;
            }
            let Some(slot) = hive_common::Slot::new(first.start) else {
                continue;
            };
            let before = old.shard_of(slot).map(|j| old.shards()[j].master.as_str());
            if before.is_some_and(|m| m != shard.master) {
                self.clock.master_changed(i);
            }
        }
    }

    /// Reports every node that stops being a master to `d` (set once, by the backplane).
    pub fn demote_through(&self, d: std::sync::Arc<crate::conn::demote::Demotions>) {
        let _ = self.demotions.set(d);
    }

    /// A receiver that wakes when the next topology is installed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_common::topology::{Shard, SlotRange};

    fn map(masters: [&str; 2]) -> ShardMap {
        let shard = |m: &str, start, end| {
            (
                Shard {
                    master: m.into(),
                    replicas: Vec::new(),
                },
                vec![SlotRange { start, end }],
            )
        };
        ShardMap::new(vec![
            shard(masters[0], 0, 8191),
            shard(masters[1], 8192, 16383),
        ])
        .unwrap()
    }

    #[test]
    fn shard_label_survives_a_failover_and_prefers_sentinel_names() {
        let t = TopologyState::default();
        t.install(map(["a:1", "b:1"]), Vec::new());
        let before: Vec<String> = (0..2).map(|i| t.load().shard_label(i)).collect();
        assert_eq!(before, ["slots:0", "slots:8192"]);
        t.install(map(["c:1", "b:1"]), Vec::new());
        assert_eq!(t.load().shard_label(0), "slots:0");
        assert_eq!(t.load().shard_name(0), "c:1");
        t.install(map(["a:1", "b:1"]), vec!["hive-a".into(), "hive-b".into()]);
        assert_eq!(t.load().shard_label(1), "hive-b");
    }
}
