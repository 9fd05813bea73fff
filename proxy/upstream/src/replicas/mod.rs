//! Which replicas may serve reads right now: `ReadMap`, rebuilt by the poller (`poll`) every
//! `backend.replica_poll_interval_ms` from the rules in `lag`, and read lock-free by `send`.

pub mod lag;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::topology::Topology;

/// A replica that may serve reads.
#[derive(Debug, Clone)]
pub struct FreshReplica {
    pub addr: Arc<str>,
    /// Every write acknowledged before this raw clock reading is on the replica (0: unknown).
    pub covers: u64,
    pub lag_ms: u64,
}

/// One replica as last judged, for INFO and `/metrics`.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub shard: usize,
    pub addr: String,
    pub lag_ms: Option<u64>,
    /// Why it is not read from; `None` when it is.
    pub stale: Option<&'static str>,
}

/// The fresh replicas of each shard of one topology snapshot.
#[derive(Default)]
pub struct ReadMap {
    /// The snapshot the shard indexes refer to; a map built from another one is not used.
    pub built_from: Option<Arc<Topology>>,
    pub shards: Vec<Vec<FreshReplica>>,
    pub views: Vec<ReplicaView>,
}

impl ReadMap {
    /// A fresh replica of shard `i` for a read, spread by `rr`; one that holds the client's
    /// last write (acknowledged at `wrote_at`, 0 for none) and is not `aside`.
    pub fn pick(
        &self,
        topo: &Arc<Topology>,
        i: usize,
        rr: usize,
        wrote_at: u64,
        aside: impl Fn(&str) -> bool,
    ) -> Option<&FreshReplica> {
        // After a topology change (until the next poll), a replica is used only if the new
        // map still has it in the same shard.
        let same = self
            .built_from
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, topo));
        let still = |r: &FreshReplica| {
            same || topo
                .map
                .shards()
                .get(i)
                .is_some_and(|s| s.replicas.iter().any(|a| *a == *r.addr))
        };
        let list = self.shards.get(i)?;
        let n = list.len();
        (0..n)
            .map(|k| &list[(rr + k) % n])
            .find(|r| (wrote_at == 0 || r.covers > wrote_at) && !aside(&r.addr) && still(r))
    }
}

/// The current `ReadMap`, and whether anyone reads from replicas (the poller idles until then).
#[derive(Default)]
pub struct ReadState {
    map: ArcSwap<ReadMap>,
    wanted: AtomicBool,
    wake: Notify,
}

impl ReadState {
    pub fn load(&self) -> arc_swap::Guard<Arc<ReadMap>> {
        self.map.load()
    }

    pub fn store(&self, map: ReadMap) {
        self.map.store(Arc::new(map));
    }

    /// Starts the poller (a client sent READONLY, or `read_from` is not `master`).
    pub fn want(&self) {
        if !self.wanted.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    pub async fn until_wanted(&self) {
        while !self.wanted() {
            self.wake.notified().await;
        }
    }

    /// Stops reads from `addr` at once (its master link went down, the module said so); the
    /// next poll judges it again.
    pub fn drop_replica(&self, addr: &str) {
        self.map.rcu(|m| {
            let shards = m
                .shards
                .iter()
                .map(|list| list.iter().filter(|r| &*r.addr != addr).cloned().collect())
                .collect();
            let views = m
                .views
                .iter()
                .cloned()
                .map(|mut v| {
                    if v.addr == addr {
                        v.stale = Some(lag::Stale::LinkDown.as_str());
                    }
                    v
                })
                .collect();
            ReadMap {
                built_from: m.built_from.clone(),
                shards,
                views,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(addr: &str, covers: u64) -> FreshReplica {
        FreshReplica {
            addr: addr.into(),
            covers,
            lag_ms: 0,
        }
    }

    #[test]
    fn pick_spreads_skips_aside_and_honours_the_last_write() {
        let topo = Arc::new(Topology::empty());
        let map = ReadMap {
            built_from: Some(topo.clone()),
            shards: vec![vec![fresh("a:1", 10), fresh("b:1", 30)]],
            views: Vec::new(),
        };
        let none = |_: &str| false;
        assert_eq!(&*map.pick(&topo, 0, 0, 0, none).unwrap().addr, "a:1");
        assert_eq!(&*map.pick(&topo, 0, 1, 0, none).unwrap().addr, "b:1");
        assert_eq!(&*map.pick(&topo, 0, 0, 20, none).unwrap().addr, "b:1");
        assert!(map.pick(&topo, 0, 0, 30, none).is_none());
        assert_eq!(
            &*map.pick(&topo, 0, 0, 0, |a| a == "a:1").unwrap().addr,
            "b:1"
        );
        assert!(map.pick(&topo, 1, 0, 0, none).is_none());
        // Another snapshot: only replicas it still lists in that shard.
        let other = Arc::new(Topology::empty());
        assert!(map.pick(&other, 0, 0, 0, none).is_none());
        let moved = Arc::new(Topology {
            map: hive_common::topology::ShardMap::new(vec![(
                hive_common::topology::Shard {
                    master: "m:1".into(),
                    replicas: vec!["b:1".into()],
                },
                vec![hive_common::topology::SlotRange {
                    start: 0,
                    end: 16383,
                }],
            )])
            .unwrap(),
            names: Vec::new(),
            named: false,
            installed_unix_ms: 0,
        });
        assert_eq!(&*map.pick(&moved, 0, 0, 0, none).unwrap().addr, "b:1");
    }

    #[test]
    fn drop_replica_takes_it_out_at_once() {
        let state = ReadState::default();
        state.store(ReadMap {
            built_from: None,
            shards: vec![vec![fresh("a:1", 1), fresh("b:1", 1)]],
            views: vec![ReplicaView {
                shard: 0,
                addr: "a:1".into(),
                lag_ms: Some(1),
                stale: None,
            }],
        });
        state.drop_replica("a:1");
        let m = state.load();
        assert_eq!(m.shards[0].len(), 1);
        assert_eq!(&*m.shards[0][0].addr, "b:1");
        assert_eq!(m.views[0].stale, Some("master link down"));
    }
}
