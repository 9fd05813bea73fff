//! `ShardMap`: which shard owns each slot, and the master and replicas of each shard.

pub mod deployed;
pub mod nodes;

use serde::{Deserialize, Serialize};

use crate::slot::{Slot, SLOT_COUNT};

/// `host:port` of a Redis node.
pub type NodeAddr = String;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub master: NodeAddr,
    pub replicas: Vec<NodeAddr>,
}

/// An inclusive range of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

/// Slot ownership shared by every backend mode. Immutable once built; a change builds a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<Shard>,
    /// Shard index per slot, `UNASSIGNED` where no shard serves it.
    owner: Box<[u16]>,
}

const UNASSIGNED: u16 = u16::MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("slot range {0}-{1} is invalid (slots are 0-16383, start <= end)")]
    BadRange(u16, u16),
    #[error("slot {0} is assigned twice")]
    Overlap(u16),
}

impl ShardMap {
    /// An empty map: every slot unassigned.
    pub fn empty() -> ShardMap {
        ShardMap {
            shards: Vec::new(),
            owner: vec![UNASSIGNED; SLOT_COUNT as usize].into_boxed_slice(),
        }
    }

    /// Builds a map from shards and their slot ranges. Ranges may leave slots unassigned (a
    /// cluster can be partly down) but may not overlap.
    pub fn new(entries: Vec<(Shard, Vec<SlotRange>)>) -> Result<ShardMap, ShardMapError> {
        let mut map = ShardMap::empty();
        for (i, (shard, ranges)) in entries.into_iter().enumerate() {
            for r in ranges {
                if r.start > r.end || r.end >= SLOT_COUNT {
                    return Err(ShardMapError::BadRange(r.start, r.end));
                }
                for s in r.start..=r.end {
                    if map.owner[s as usize] != UNASSIGNED {
                        return Err(ShardMapError::Overlap(s));
                    }
                    map.owner[s as usize] = i as u16;
                }
            }
            map.shards.push(shard);
        }
        Ok(map)
    }

    /// Splits all slots evenly over `n` shards in order, as `redis-cli --cluster create` does
    /// (3 shards: 0-5460, 5461-10922, 10923-16383).
    pub fn even_ranges(n: usize) -> Vec<SlotRange> {
        let n = n.max(1);
        let per = SLOT_COUNT as f64 / n as f64;
        (0..n)
            .map(|i| SlotRange {
                start: (i as f64 * per).round() as u16,
                end: (((i + 1) as f64 * per).round() as u16).saturating_sub(1),
            })
            .collect()
    }

    pub fn shard_of(&self, slot: Slot) -> Option<usize> {
        match self.owner[slot.index()] {
            UNASSIGNED => None,
            i => Some(i as usize),
        }
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The slot ranges each shard owns, in shard order.
    pub fn ranges(&self) -> Vec<Vec<SlotRange>> {
        let mut out = vec![Vec::new(); self.shards.len()];
        let mut s = 0usize;
        while s < SLOT_COUNT as usize {
            let o = self.owner[s];
            let start = s;
            while s < SLOT_COUNT as usize && self.owner[s] == o {
                s += 1;
            }
            if o != UNASSIGNED {
                out[o as usize].push(SlotRange {
                    start: start as u16,
                    end: (s - 1) as u16,
                });
            }
        }
        out
    }

    /// A copy with shard `i`'s master replaced (a failover moves one group's master).
    pub fn with_master(&self, i: usize, master: NodeAddr, replicas: Vec<NodeAddr>) -> ShardMap {
        let mut m = self.clone();
        if let Some(s) = m.shards.get_mut(i) {
            s.master = master;
            s.replicas = replicas;
        }
        m
    }

    /// Number of slots no shard serves.
    pub fn unassigned(&self) -> usize {
        self.owner.iter().filter(|&&o| o == UNASSIGNED).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(m: &str) -> Shard {
        Shard {
            master: m.into(),
            replicas: vec![],
        }
    }

    #[test]
    fn even_ranges_match_cluster_create() {
        let r = ShardMap::even_ranges(3);
        assert_eq!((r[0].start, r[0].end), (0, 5460));
        assert_eq!((r[1].start, r[1].end), (5461, 10922));
        assert_eq!((r[2].start, r[2].end), (10923, 16383));
        let one = ShardMap::even_ranges(1);
        assert_eq!((one[0].start, one[0].end), (0, 16383));
    }

    #[test]
    fn shard_map_routes_and_reports_ranges() {
        let r = ShardMap::even_ranges(3);
        let m = ShardMap::new(vec![
            (shard("a:1"), vec![r[0]]),
            (shard("b:1"), vec![r[1]]),
            (shard("c:1"), vec![r[2]]),
        ])
        .unwrap();
        assert_eq!(m.shard_of(Slot::new(0).unwrap()), Some(0));
        assert_eq!(m.shard_of(Slot::new(10923).unwrap()), Some(2));
        assert_eq!(m.unassigned(), 0);
        assert_eq!(m.ranges()[1], vec![r[1]]);
        let moved = m.with_master(1, "d:1".into(), vec!["b:1".into()]);
        assert_eq!(moved.shards()[1].master, "d:1");
        assert_eq!(moved.shard_of(Slot::new(5461).unwrap()), Some(1));
        assert_eq!(m.shards()[1].master, "b:1");
    }

    #[test]
    fn shard_map_rejects_overlap_and_bad_ranges() {
        let a = SlotRange { start: 0, end: 10 };
        let b = SlotRange { start: 10, end: 20 };
        let err = ShardMap::new(vec![(shard("a:1"), vec![a]), (shard("b:1"), vec![b])]);
        assert_eq!(err.unwrap_err(), ShardMapError::Overlap(10));
        let bad = SlotRange {
            start: 5,
            end: 16384,
        };
        assert!(ShardMap::new(vec![(shard("a:1"), vec![bad])]).is_err());
    }
}
