//! State shared by every client task of a proxy: config, the backplane (topology, backend
//! connector, replicas, facts), the client registry, the script cache and the counters.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hive_upstream::Backplane;

use super::pause::PauseState;
use crate::auth::{AuthState, Users};
use crate::config::{Config, ConfigError};
use crate::metrics::Stats;
use crate::state::monitor::Monitors;
use crate::state::registry::Registry;
use crate::state::scripts::Scripts;
use crate::state::slowlog::SlowLog;
use crate::stream::Dialer;
use crate::tls::server::Acceptor;

pub struct Shared {
    /// The config the proxy started with.
    pub config: Config,
    /// The config in effect: `config` with what reloads changed (`reload::LIVE_KEYS`).
    pub live: ArcSwap<Config>,
    /// Everything that reaches the nodes: topology, connector, replicas fit for reads, the
    /// nodes' last poll.
    pub plane: Arc<Backplane>,
    pub stats: Arc<Stats>,
    pub next_client_id: AtomicU64,
    /// Connected clients, for CLIENT LIST / KILL.
    pub clients: Registry,
    /// Script bodies by SHA1 (from SCRIPT LOAD and EVAL), to reload one on a node that
    /// answers NOSCRIPT after a failover or restart.
    pub scripts: Scripts,
    /// Every subscription of Hive's clients, for PUBLISH's count.
    pub pubsub: crate::state::pubsub_index::PubsubIndex,
    /// The proxy's own users (never the backend's credentials) and the ACL LOG.
    pub auth: AuthState,
    /// The TLS acceptor for `proxy.tls_listen`; `reload` re-reads its files (SIGHUP).
    pub tls: Option<Acceptor>,
    /// CLIENT PAUSE in force, if any.
    pub pause: PauseState,
    /// The proxy's slow requests (SLOWLOG) and the clients running MONITOR.
    pub slowlog: SlowLog,
    pub monitors: Monitors,
    /// The drain of a shutdown has begun: /readyz answers 503 until the process is gone.
    pub draining: std::sync::atomic::AtomicBool,
    /// The listening sockets went to an upgraded process: this one's admin listener stops at
    /// once, so the new process alone answers the probes.
    pub handed_over: std::sync::atomic::AtomicBool,
    /// CLIENT TRACKING: who read what, and where invalidations go.
    pub tracking: crate::tracking::Tracker,
    /// Whether the tracking feed follows every master now.
    pub tracking_ready: crate::tracking::feed::Ready,
    /// The near cache (`[cache]`), kept valid by the tracking feed.
    pub cache: Option<Arc<crate::cache::NearCache>>,
    /// The other Hives in front of the deployment (`proxy.fleet`), if any.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

impl Shared {
    /// Backends over TCP or TLS as configured. Fails only on files that no longer read (the
    /// config was validated).
    pub fn new(config: Config) -> Result<Arc<Shared>, ConfigError> {
        let dialer = crate::tls::dialer(&config, std::path::Path::new("<config>"))?;
        Shared::with_dialer(config, dialer)
    }

    /// Backends reached through `dialer` (TLS, or in-memory nodes in tests).
    pub fn with_dialer(
        config: Config,
        dialer: Arc<dyn Dialer>,
    ) -> Result<Arc<Shared>, ConfigError> {
        let users = Users::from_config(&config, std::path::Path::new("<config>"))?;
        let tls = Acceptor::from_config(&config, std::path::Path::new("<config>"))?;
        let plane = Backplane::with_dialer(config.backend.clone(), dialer);
        plane.node_poll_interval_ms.store(
            config.proxy.node_poll_interval_ms,
            std::sync::atomic::Ordering::Relaxed,
        );
        let stats = Arc::new(Stats {
            upstream: plane.stats.clone(),
            ..Stats::default()
        });
        let slowlog = SlowLog::new(
            config.proxy.slowlog_slower_than_us,
            config.proxy.slowlog_max_len,
        );
        let pubsub = crate::state::pubsub_index::PubsubIndex::default();
        let fleet = crate::fleet::Fleet::from_config(&config).map(|(f, changes)| {
            pubsub.share(changes);
            f
        });
        let tracking = crate::tracking::Tracker::new(config.proxy.tracking_table_max_keys);
        let cache = config
            .cache
            .enabled
            .then(|| Arc::new(crate::cache::NearCache::new(&config.cache)));
        Ok(Arc::new(Shared {
            plane,
            live: ArcSwap::from_pointee(config.clone()),
            config,
            stats,
            next_client_id: AtomicU64::new(1),
            clients: Registry::default(),
            scripts: Scripts::default(),
            pubsub,
            auth: AuthState::new(users),
            tls,
            pause: PauseState::default(),
            slowlog,
            monitors: Monitors::default(),
            draining: Default::default(),
            handed_over: Default::default(),
            tracking,
            tracking_ready: Default::default(),
            cache,
            fleet,
        }))
    }
}
