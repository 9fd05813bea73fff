//! State shared by every client task: config, the topology snapshot, the connector and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use hive_common::topology::ShardMap;
use tokio::sync::Notify;

use crate::config::Config;
use crate::stats::Stats;
use crate::upstream::backend::BackendOpts;
use crate::upstream::connector::Connector;

/// An immutable routing snapshot. Connections are not part of it: each worker thread maps the
/// master addresses to its own connections (`upstream::conns`).
pub struct Topology {
    pub map: ShardMap,
    /// Shard names for messages: Sentinel master names, else the master address.
    pub names: Vec<String>,
}

impl Topology {
    pub fn empty() -> Topology {
        Topology {
            map: ShardMap::empty(),
            names: Vec::new(),
        }
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
}

/// The master address `ShardMap` carries for a shard with no usable master.
pub const NO_MASTER: &str = "";

pub struct Shared {
    pub config: Config,
    /// Read lock-free once per client batch; replaced whole by the refresher.
    pub topology: ArcSwap<Topology>,
    pub connector: Connector,
    pub stats: Arc<Stats>,
    /// Wakes the topology refresher (after MOVED, CLUSTERDOWN or a dead connection).
    pub refresh: Arc<Notify>,
    pub next_client_id: AtomicU64,
    /// Connected clients, for CLIENT LIST / KILL.
    pub clients: crate::clients::Registry,
    /// Script bodies by SHA1 (from SCRIPT LOAD and EVAL), to reload one on a node that
    /// answers NOSCRIPT after a failover or restart.
    pub scripts: crate::scripts::Scripts,
    /// Bumped by every install, so a slow refresh cannot overwrite a newer change.
    generation: AtomicU64,
    install_lock: Mutex<()>,
    /// Shards Sentinel is failing over, until when: their requests wait and the periodic
    /// re-check must not reinstate the old master (it still takes writes that would be lost).
    failovers: Mutex<HashMap<usize, Instant>>,
    /// Ticks on every install, so requests waiting for a master retry at once.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    pub fn new(config: Config) -> Arc<Shared> {
        let stats = Arc::new(Stats::default());
        let refresh = Arc::new(Notify::new());
        let opts = BackendOpts {
            connect_timeout: config.connect_timeout(),
            command_timeout: Some(config.command_timeout()),
            auth: config.node_auth(),
            proto: crate::upstream::Proto::Resp2,
            push: None,
        };
        Arc::new(Shared {
            connector: Connector::new(opts, refresh.clone(), stats.clone()),
            config,
            topology: ArcSwap::from_pointee(Topology::empty()),
            stats,
            refresh,
            next_client_id: AtomicU64::new(1),
            clients: Default::default(),
            scripts: Default::default(),
            generation: AtomicU64::new(0),
            install_lock: Mutex::new(()),
            failovers: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Marks shard `i` as failing over until `until` (`None` clears it).
    pub fn set_failover(&self, i: usize, until: Option<Instant>) {
        let mut f = self.failovers.lock().unwrap_or_else(|p| p.into_inner());
        match until {
            Some(t) => f.insert(i, t),
            None => f.remove(&i),
        };
    }

    /// Whether shard `i` is in a failover that has not timed out.
    pub fn failing_over(&self, i: usize) -> bool {
        let f = self.failovers.lock().unwrap_or_else(|p| p.into_inner());
        f.get(&i).is_some_and(|t| Instant::now() < *t)
    }

    /// The current install generation (see `install_if`).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Installs a new shard map. `names` labels the shards
    /// (empty: the master addresses).
    pub fn install(&self, map: ShardMap, names: Vec<String>) {
        let _g = self.install_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.store(map, names);
    }

    /// Installs `map` only if nothing was installed since `generation` was read; returns
    /// whether it did.
    pub fn install_if(&self, generation: u64, map: ShardMap, names: Vec<String>) -> bool {
        let _g = self.install_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation {
            return false;
        }
        self.store(map, names);
        true
    }

    fn store(&self, map: ShardMap, names: Vec<String>) {
        let names = if names.len() == map.shards().len() {
            names
        } else {
            map.shards().iter().map(|s| s.master.clone()).collect()
        };
        self.topology.store(Arc::new(Topology { map, names }));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
    }

    /// A receiver that wakes when the next topology is installed.
    pub fn topology_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
