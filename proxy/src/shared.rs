//! State shared by every client task: config, the topology snapshot, the pool and counters.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hive_common::topology::ShardMap;
use tokio::sync::Notify;

use crate::config::Config;
use crate::stats::Stats;
use crate::upstream::backend::{Backend, BackendOpts};
use crate::upstream::pool::Pool;

/// An immutable routing snapshot: the shard map plus a connection handle per shard master.
pub struct Topology {
    pub map: ShardMap,
    pub masters: Vec<Arc<Backend>>,
}

impl Topology {
    pub fn empty() -> Topology {
        Topology {
            map: ShardMap::empty(),
            masters: Vec::new(),
        }
    }
}

pub struct Shared {
    pub config: Config,
    /// Read lock-free once per client batch; replaced whole by the refresher.
    pub topology: ArcSwap<Topology>,
    pub pool: Pool,
    pub stats: Arc<Stats>,
    /// Wakes the topology refresher (after MOVED, CLUSTERDOWN or a dead connection).
    pub refresh: Arc<Notify>,
    pub next_client_id: AtomicU64,
}

impl Shared {
    pub fn new(config: Config) -> Arc<Shared> {
        let stats = Arc::new(Stats::default());
        let refresh = Arc::new(Notify::new());
        let opts = BackendOpts {
            connect_timeout: config.connect_timeout(),
            command_timeout: config.command_timeout(),
        };
        Arc::new(Shared {
            pool: Pool::new(opts, refresh.clone(), stats.clone()),
            config,
            topology: ArcSwap::from_pointee(Topology::empty()),
            stats,
            refresh,
            next_client_id: AtomicU64::new(1),
        })
    }

    /// Installs a new shard map, reusing pooled connections.
    pub fn install(&self, map: ShardMap) {
        let masters = map
            .shards()
            .iter()
            .map(|s| self.pool.get(&s.master))
            .collect();
        self.topology.store(Arc::new(Topology { map, masters }));
    }
}
