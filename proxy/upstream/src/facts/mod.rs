//! Facts about the deployment, from one poll of every node and sentinel: the one source that
//! `/metrics`, `/readyz`, `hive status`, `hive monitor` and `hive check` read, so what they
//! show always agrees.

pub mod health;
pub mod node;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

pub use health::{Finding, Health};
pub use node::NodeFacts;

/// A shard as the proxy routes it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ShardFacts {
    pub name: String,
    /// The metrics' `shard` label, stable across failovers (`Topology::shard_label`).
    pub label: String,
    pub master: String,
    pub replicas: Vec<String>,
    /// `0-5460` style ranges, and how many slots they hold.
    pub slots: Vec<String>,
    pub slot_count: usize,
}

/// One master group as a sentinel sees it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SentinelMaster {
    pub name: String,
    pub addr: String,
    /// Sentinel's flags (`master`, `s_down`, `o_down` ...).
    pub flags: String,
    pub quorum: u64,
    pub other_sentinels: u64,
    pub replicas: u64,
    /// `SENTINEL CKQUORUM`: enough sentinels to authorize a failover.
    pub ckquorum_ok: bool,
    pub ckquorum: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SentinelFacts {
    pub addr: String,
    pub up: bool,
    pub error: Option<String>,
    pub masters: Vec<SentinelMaster>,
}

/// Everything one poll learned.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    pub taken_unix_ms: u64,
    /// How long the poll took.
    pub poll_ms: u64,
    pub mode: String,
    pub shards: Vec<ShardFacts>,
    pub nodes: Vec<NodeFacts>,
    pub sentinels: Vec<SentinelFacts>,
    /// Slots assigned to a shard, and assigned to a shard whose master answered.
    pub slots_assigned: usize,
    pub slots_covered: usize,
}

impl Snapshot {
    /// Over the masters: slots open for a move (migrating, importing) and keys moved in.
    pub fn resharding(&self) -> (u64, u64, u64) {
        self.nodes
            .iter()
            .filter(|n| n.role == "master")
            .fold((0, 0, 0), |(m, i, k), n| {
                (
                    m + n.slots_migrating,
                    i + n.slots_importing,
                    k + n.keys_imported,
                )
            })
    }

    pub fn node(&self, addr: &str) -> Option<&NodeFacts> {
        self.nodes.iter().find(|n| n.addr == addr)
    }

    /// Whether shard `i`'s master answered the poll as a master.
    pub fn master_up(&self, i: usize) -> bool {
        let Some(s) = self.shards.get(i) else {
            return false;
        };
        self.node(&s.master)
            .is_some_and(|n| n.up && n.role == "master")
    }
}

/// The latest snapshot the proxy's poller took (`None` until the first one).
#[derive(Debug, Default)]
pub struct FactsCell {
    latest: ArcSwapOption<Snapshot>,
}

impl FactsCell {
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.load_full()
    }

    pub fn store(&self, s: Snapshot) {
        self.latest.store(Some(Arc::new(s)));
    }
}
