//! `Backplane`: everything a caller needs to reach the nodes of one deployment (its backend
//! config, the topology, the connector with node auth and TLS, the counters, the replicas fit
//! for reads and the last facts poll). The proxy holds one; `hive backup`, `restore` and the
//! operator commands build one without any client-side state.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::config::{BackendConfig, BadSetting};
use crate::conn::backend::AckOpts;
use crate::conn::backend::BackendOpts;
use crate::conn::connector::Connector;
use crate::conn::Proto;
use crate::facts::FactsCell;
use crate::replicas::ReadState;
use crate::stats::UpstreamStats;
use crate::stream::Dialer;
use crate::topology::layout::Layout;
use crate::topology::TopologyState;

/// How often the facts poller runs unless told otherwise (`proxy.node_poll_interval_ms`).
pub const NODE_POLL_INTERVAL_MS: u64 = 2000;

pub struct Backplane {
    /// The backend config the deployment was opened with.
    pub config: BackendConfig,
    /// The backend config in effect: `config` with what reloads changed.
    pub live: ArcSwap<BackendConfig>,
    /// How often `facts::run` polls the nodes (reloadable).
    pub node_poll_interval_ms: AtomicU64,
    /// Where the slots are; read lock-free once per client batch.
    pub topology: TopologyState,
    pub connector: Connector,
    pub stats: Arc<UpstreamStats>,
    /// Wakes the topology refresher (after MOVED, CLUSTERDOWN or a dead connection).
    pub refresh: Arc<Notify>,
    /// The nodes' and sentinels' last poll.
    pub facts: FactsCell,
    /// The replicas fresh enough for reads (`backend.read_from`, READONLY).
    pub reads: ReadState,
    /// Sentinel and static modes' shards and slots: `hive.toml`'s, or the deployment's own map.
    pub layout: ArcSwap<Layout>,
    /// Wakes the slot map follower (hive-module published a new map).
    pub map_changed: Notify,
    /// Who this proxy is when it acknowledges a slot map (`HIVE.SLOTS ACK`); unset in the
    /// CLI, which routes no client and must not be waited for.
    pub proxy_id: std::sync::OnceLock<String>,
}

impl Backplane {
    /// Nodes reached over TCP or TLS as `config` says. A TLS mistake names the key and why.
    pub fn open(config: BackendConfig) -> Result<Arc<Backplane>, BadSetting> {
        let dialer = crate::tls::dialer(&config)?;
        Ok(Backplane::with_dialer(config, dialer))
    }

    /// Nodes reached through `dialer` (TLS, or in-memory nodes in tests).
    pub fn with_dialer(config: BackendConfig, dialer: Arc<dyn Dialer>) -> Arc<Backplane> {
        let stats = Arc::new(UpstreamStats::default());
        let refresh = Arc::new(Notify::new());
        let opts = BackendOpts {
            connect_timeout: config.connect_timeout(),
            command_timeout: Some(config.command_timeout()),
            auth: config.node_auth(),
            proto: Proto::Resp2,
            push: None,
            dialer,
            hand_off_at: Some(config.large_value_bytes.0),
            readonly: false,
            ask_id: false,
            ack: (config.write_ack == crate::config::WriteAck::Replica)
                .then(|| AckOpts::new(config.min_replicas_ack, config.write_ack_timeout_ms)),
        };
        let connector = Connector::new(opts, refresh.clone(), stats.clone());
        let topology = TopologyState::default();
        topology.demote_through(connector.demotions());
        Arc::new(Backplane {
            layout: ArcSwap::from_pointee(Layout::from_config(&config)),
            proxy_id: std::sync::OnceLock::new(),
            map_changed: Notify::new(),
            connector,
            live: ArcSwap::from_pointee(config.clone()),
            config,
            node_poll_interval_ms: AtomicU64::new(NODE_POLL_INTERVAL_MS),
            topology,
            stats,
            refresh,
            facts: FactsCell::default(),
            reads: ReadState::default(),
        })
    }

    pub fn node_poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.node_poll_interval_ms.load(Relaxed))
    }
}

impl Backplane {
    /// Marks this backplane as a proxy's: it acknowledges the slot maps it routes by.
    pub fn acknowledge_maps(&self) {
        let _ = self.proxy_id.set(format!(
            "hive-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        ));
    }
}
