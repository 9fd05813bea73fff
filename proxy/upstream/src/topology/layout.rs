//! The shards and slot ranges that sentinel and static modes route by: `hive.toml`'s until the
//! deployment carries a slot map (hive-module's `HIVE.SLOTS`), then the newest map its masters
//! hold (`watch::deployed` follows it). Cluster mode never uses it.

use hive_common::topology::deployed::DeployedMap;
use hive_common::topology::{Shard, ShardMap, SlotRange};
use hive_common::{Slot, SLOT_COUNT};

use crate::config::{BackendConfig, Mode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The map's epoch; 0 while `hive.toml`'s shards are in effect.
    pub epoch: u64,
    /// Sentinel master names, or (static mode) master addresses, in shard order.
    pub names: Vec<String>,
    pub ranges: Vec<Vec<SlotRange>>,
    /// Static mode's replicas per shard.
    pub replicas: Vec<Vec<String>>,
    /// Slots being handed over (empty: none). Transactions on them wait.
    moving: Box<[bool]>,
}

impl Layout {
    pub fn from_config(cfg: &BackendConfig) -> Layout {
        let names = cfg
            .shards
            .iter()
            .map(|s| match cfg.mode {
                Mode::Sentinel => s.name.clone().unwrap_or_default(),
                _ => s.master.clone().unwrap_or_default(),
            })
            .collect();
        Layout {
            epoch: 0,
            names,
            ranges: cfg.shard_ranges().unwrap_or_default(),
            replicas: cfg.shards.iter().map(|s| s.replicas.clone()).collect(),
            moving: Box::new([]),
        }
    }

    pub fn from_deployed(map: &DeployedMap) -> Layout {
        let moving = map.moving_slots();
        Layout {
            epoch: map.epoch,
            names: map.shards.iter().map(|s| s.name.clone()).collect(),
            ranges: map.ranges(),
            replicas: map.shards.iter().map(|s| s.replicas.clone()).collect(),
            moving: if moving.iter().any(|m| *m) {
                moving.into_boxed_slice()
            } else {
                Box::new([])
            },
        }
    }

    /// Static mode's shard map: each name is its master's address.
    pub fn static_map(&self) -> ShardMap {
        let entries = self
            .names
            .iter()
            .zip(&self.ranges)
            .enumerate()
            .map(|(i, (name, r))| {
                let shard = Shard {
                    master: name.clone(),
                    replicas: self.replicas.get(i).cloned().unwrap_or_default(),
                };
                (shard, r.clone())
            })
            .collect();
        ShardMap::new(entries).unwrap_or_else(|_| ShardMap::empty())
    }

    pub fn is_moving(&self, slot: Slot) -> bool {
        self.moving.get(slot.index()).copied().unwrap_or(false)
    }

    /// How many slots are being handed over.
    pub fn moving_count(&self) -> usize {
        self.moving.iter().filter(|m| **m).count()
    }

    /// Whether every slot has an owner.
    pub fn covers_all(&self) -> bool {
        let n: usize = self
            .ranges
            .iter()
            .flatten()
            .map(|r| (r.end - r.start) as usize + 1)
            .sum();
        n == SLOT_COUNT as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_from_a_deployed_map_routes_and_marks_moving_slots() {
        let map = DeployedMap::parse(
            r#"{"epoch":7,"shards":[{"name":"127.0.0.1:1","replicas":["127.0.0.1:2"],"slots":"0-8191"},
            {"name":"127.0.0.1:3","slots":"8192-16383"}],"moving":[{"slots":"8000-8191","from":"127.0.0.1:1","to":"127.0.0.1:3"}]}"#,
        )
        .unwrap();
        let l = Layout::from_deployed(&map);
        assert_eq!(l.epoch, 7);
        assert!(l.covers_all());
        assert_eq!(l.moving_count(), 192);
        assert!(l.is_moving(Slot::new(8000).unwrap()) && !l.is_moving(Slot::new(7999).unwrap()));
        let m = l.static_map();
        assert_eq!(m.shards()[0].replicas, vec!["127.0.0.1:2".to_string()]);
        assert_eq!(m.shard_of(Slot::new(9000).unwrap()), Some(1));
    }
}
