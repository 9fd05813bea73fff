//! Proxy configuration: the TOML file and its defaults. Validation lives in `validate.rs`.

mod cache;
mod fleet;
mod validate;

pub use cache::{Admit, CacheConfig};
pub use fleet::FleetSetting;

pub use hive_upstream::config::{
    parse_memsize, BackendConfig, MemSize, Mode, OutputLimit, ReadFrom, Secret, ShardConfig,
    WriteAck,
};
use hive_upstream::conn::Auth;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hive_common::resp::Limits;

use serde::{Deserialize, Serialize};

/// A configuration mistake: where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: PathBuf,
        key: String,
        reason: String,
    },
    /// A line of `proxy.aclfile`.
    #[error("{file}:{line}: {reason}")]
    AclFile {
        file: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Whether clients must present a certificate the CA signed (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    Yes,
    Optional,
    No,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub backend: BackendConfig,
    pub log: LogConfig,
    /// The near cache (off by default).
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on.
    pub listen: String,
    /// Worker threads; 0 means half the CPUs, at least one.
    pub threads: usize,
    /// Connections beyond this are answered `-ERR max number of clients reached` and closed.
    pub max_clients: usize,
    /// Close a client idle for this many seconds; 0 disables (Redis's `timeout`).
    pub client_idle_timeout_s: u64,
    /// Largest bulk argument accepted (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Largest number of arguments in one request.
    pub max_multibulk_len: usize,
    /// Requests one client may have in flight before the proxy stops reading from it.
    pub max_pending_per_client: usize,
    /// On SIGINT/SIGTERM, wait this long for in-flight replies before exiting.
    pub shutdown_grace_ms: u64,
    /// A subscriber whose unread messages pass this many bytes is disconnected (Redis's
    /// `client-output-buffer-limit pubsub` hard limit, 32 MB by default).
    pub subscriber_output_limit_bytes: usize,
    /// A client whose unparsed request bytes (one request being received, or a pipeline not
    /// yet decoded) pass this is disconnected (Redis's `client-query-buffer-limit`, 1gb). A
    /// MULTI queue past it aborts the transaction.
    pub client_query_buffer_limit: MemSize,
    /// `<hard> <soft> <soft seconds>` for replies not yet written to a client (Redis's
    /// `client-output-buffer-limit normal`). Past `soft` the proxy stops reading the client
    /// until it reads; past `hard`, or above `soft` for the seconds given, it is disconnected.
    pub client_output_buffer_limit: OutputLimit,
    /// All clients' buffers together (requests being received, replies not yet written,
    /// MULTI queues); past it the clients holding the most are disconnected first, as Redis's
    /// `maxmemory-clients` does. 0: no limit.
    pub maxmemory_buffers: MemSize,
    /// The default user's password (Redis's `requirepass`); clients must AUTH with it.
    pub requirepass: Option<Secret>,
    /// ACL users in Redis's rule syntax, one per entry: `"app on >secret ~app:* +@read"` (a
    /// leading `user` is optional, so lines of a `users.acl` can be pasted).
    pub users: Vec<Secret>,
    /// An ACL file (`user <name> <rules>` per line), read at startup after `users`.
    pub aclfile: Option<PathBuf>,
    /// A TLS listener beside `listen` (or instead of it, with `listen = ""`).
    pub tls_listen: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The CA that signs client certificates.
    pub tls_ca_cert_file: Option<PathBuf>,
    /// `yes` (clients must present a certificate the CA signed, Redis's default), `optional`
    /// or `no`.
    pub tls_auth_clients: AuthClients,
    /// The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); off when unset.
    pub admin_listen: Option<String>,
    /// How often the proxy polls every node and sentinel for `/metrics` (with `admin_listen`).
    pub node_poll_interval_ms: u64,
    /// Requests slower than this (from decoded to reply written) go to SLOWLOG; 0 logs every
    /// request, a negative value none (Redis's `slowlog-log-slower-than`).
    pub slowlog_slower_than_us: i64,
    /// Entries SLOWLOG keeps (Redis's `slowlog-max-len`).
    pub slowlog_max_len: usize,
    /// One request in this many is sampled for INFO hotkeys, /metrics and `hive top` (its
    /// first key and reply size); 0 turns sampling off.
    pub hotkeys_sample_every: u32,
    /// Multi-key commands whose keys hash to different slots: `refuse` (Redis Cluster's
    /// `-CROSSSLOT`) or `emulate` (Hive runs them across shards, not atomically).
    pub cross_slot: CrossSlot,
    /// An emulated command that would copy more than this many bytes of values between
    /// shards is refused instead.
    pub cross_slot_max_bytes: MemSize,
    /// CLIENT TRACKING: keys remembered for invalidation at most (Redis's
    /// `tracking-table-max-keys`); past it the oldest are evicted with an invalidation. 0: no
    /// bound.
    pub tracking_table_max_keys: usize,
    /// The other Hives in front of this deployment: a list of their client addresses, or
    /// `"discover"`. Cluster clients are then shown the live Hives as the cluster's nodes, and
    /// ACL changes and pub/sub counts are shared among them.
    pub fleet: Option<FleetSetting>,
    /// The host:port cluster clients are given for this Hive (default: `listen`).
    pub announce: Option<String>,
    /// How often a fleet member announces itself and checks its peers.
    pub fleet_heartbeat_ms: u64,
    /// The key that signs fleet messages on the deployment (default: derived from the
    /// backend password).
    pub fleet_secret: Option<Secret>,
}

/// `proxy.cross_slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossSlot {
    #[default]
    Refuse,
    Emulate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `hive_proxy=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` for people, `json` (one object per line) for log collectors.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let limits = Limits::default();
        ProxyConfig {
            listen: "127.0.0.1:6380".into(),
            threads: 0,
            max_clients: 10_000,
            client_idle_timeout_s: 0,
            max_bulk_len: limits.max_bulk_len,
            max_multibulk_len: limits.max_multibulk_len,
            max_pending_per_client: 4096,
            shutdown_grace_ms: 5000,
            subscriber_output_limit_bytes: 32 << 20,
            client_query_buffer_limit: MemSize(1 << 30),
            client_output_buffer_limit: OutputLimit {
                hard: 1 << 30,
                soft: 256 << 20,
                soft_seconds: 60,
            },
            maxmemory_buffers: MemSize(0),
            requirepass: None,
            users: Vec::new(),
            aclfile: None,
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: AuthClients::Yes,
            admin_listen: None,
            node_poll_interval_ms: 2000,
            slowlog_slower_than_us: 10_000,
            slowlog_max_len: 128,
            hotkeys_sample_every: 100,
            cross_slot: CrossSlot::Refuse,
            cross_slot_max_bytes: MemSize(64 << 20),
            tracking_table_max_keys: 1_000_000,
            fleet: None,
            announce: None,
            fleet_heartbeat_ms: 500,
            fleet_secret: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.into(),
            source,
        })?;
        Config::parse(&text, file)
    }

    /// Parses TOML text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = inner.message().to_string();
            let line = inner
                .span()
                .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.into(),
                key,
                reason: format!("{reason}{line}"),
            }
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.proxy.max_bulk_len,
            max_multibulk_len: self.proxy.max_multibulk_len,
            ..Limits::default()
        }
    }

    /// Credentials for the Redis nodes, if a password is configured.
    pub fn node_auth(&self) -> Option<Auth> {
        self.backend.node_auth()
    }

    /// Credentials for the Sentinels, if a password is configured.
    pub fn sentinel_auth(&self) -> Option<Auth> {
        self.backend.sentinel_auth()
    }

    pub fn connect_timeout(&self) -> Duration {
        self.backend.connect_timeout()
    }

    pub fn command_timeout(&self) -> Duration {
        self.backend.command_timeout()
    }
}

#[cfg(test)]
mod tests;
