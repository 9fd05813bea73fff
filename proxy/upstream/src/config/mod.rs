//! The `[backend]` section of hive.toml as plain data: the backend mode, the nodes and
//! sentinels to reach, their credentials, timeouts and TLS files, and read preferences.

mod auth;
mod memsize;
mod secret;

pub use auth::Auth;
pub use memsize::{parse_memsize, MemSize, OutputLimit};
pub use secret::Secret;

use std::path::PathBuf;
use std::time::Duration;

use hive_common::topology::deployed::parse_ranges;
use hive_common::topology::{ShardMap, SlotRange};
use serde::{Deserialize, Serialize};

/// A backend setting that cannot be used (a TLS file that does not read, a missing CA): the key
/// at fault and why. The caller adds the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {reason}")]
pub struct BadSetting {
    pub key: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A Redis Cluster: the topology comes from `CLUSTER SLOTS`.
    Cluster,
    /// Master groups watched by Sentinel, sharded by slot in config order.
    Sentinel,
    /// Fixed standalone masters, sharded by slot in config order.
    Static,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Sentinel => "sentinel",
            Mode::Static => "static",
        }
    }
}

/// One shard of a sentinel or static deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// Sentinel mode: the master name Sentinel monitors.
    pub name: Option<String>,
    /// Static mode: the master's `host:port`.
    pub master: Option<String>,
    /// Static mode: replicas' `host:port` (read from with `backend.read_from`).
    pub replicas: Vec<String>,
    /// Slots this shard owns, e.g. `"0-5460"` or `"0-99,200-300"`. Give it for every shard or
    /// for none (then slots are split evenly in order).
    pub slots: Option<String>,
}

impl ShardConfig {
    /// A sentinel-mode shard: the master name Sentinel monitors.
    pub fn named(name: impl Into<String>) -> ShardConfig {
        ShardConfig {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// A static-mode shard.
    pub fn at(master: impl Into<String>, replicas: Vec<String>) -> ShardConfig {
        ShardConfig {
            master: Some(master.into()),
            replicas,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    pub mode: Mode,
    /// Cluster mode: nodes to discover the topology from (`host:port`).
    pub seeds: Vec<String>,
    /// Sentinel mode: Sentinel addresses (`host:port`), asked in order.
    pub sentinels: Vec<String>,
    /// Sentinel and static modes: the shards, in slot order.
    pub shards: Vec<ShardConfig>,
    /// ACL user and password for the Redis nodes (AUTH on every backend connection).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// ACL user and password for the Sentinels.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<Secret>,
    pub connect_timeout_ms: u64,
    /// A backend that leaves a request unanswered this long is treated as dead.
    pub command_timeout_ms: u64,
    /// Re-read the topology this often even when nothing suggests a change.
    pub refresh_interval_ms: u64,
    /// MOVED/ASK redirects followed for one request before giving up.
    pub max_redirects: u8,
    /// How long a request may wait, retrying, for its shard to have a writable master
    /// (failover, TRYAGAIN, CLUSTERDOWN, READONLY, unreachable master).
    pub failover_hold_ms: u64,
    /// First retry delay while holding; doubled on each retry up to `retry_backoff_max_ms`.
    pub retry_backoff_ms: u64,
    /// The longest delay between two retries of a held request.
    pub retry_backoff_max_ms: u64,
    /// Requests and replies at least this long go over a connection of the client's own, so
    /// they never queue other clients' requests behind them on a shared connection.
    pub large_value_bytes: MemSize,
    /// Reach nodes and sentinels over TLS.
    pub tls: bool,
    /// The CA their certificates must chain to (needed with `tls`).
    pub tls_ca_cert_file: Option<PathBuf>,
    /// A client certificate, for nodes with `tls-auth-clients yes`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The name their certificates carry, when it is not the host of their address.
    pub tls_server_name: Option<String>,
    /// Where read-only commands go by default (a client's READONLY / READWRITE overrides it).
    pub read_from: ReadFrom,
    /// A replica lagging more than this (or with its master link down, or loading) is not
    /// read from.
    pub max_replica_lag_ms: u64,
    /// How often replicas' lag and offsets are polled while any client reads from replicas.
    pub replica_poll_interval_ms: u64,
    /// A client's read after its own write goes to the master until a replica has the write.
    pub read_your_writes: bool,
    /// Subscribe to hive-module's `__hive__:events` on every node and re-read the topology on
    /// a promotion or a lost master link, instead of waiting for the next poll.
    pub failover_push: bool,
    /// When a write is answered: once its master applied it (`node`, Redis's own semantics),
    /// or once `min_replicas_ack` replicas have it too (`replica`, confirmed with WAIT).
    pub write_ack: WriteAck,
    /// With `write_ack = "replica"`: how many replicas must confirm each write.
    pub min_replicas_ack: u32,
    /// With `write_ack = "replica"`: how long to wait for the confirmations before answering
    /// `-NOREPLICAS` (the write may still have been applied: its outcome is unknown).
    pub write_ack_timeout_ms: u64,
}

/// When a write is acknowledged to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WriteAck {
    /// When the master has applied it (asynchronous replication: a failover may lose it).
    #[default]
    Node,
    /// When `min_replicas_ack` replicas have it as well.
    Replica,
}

impl WriteAck {
    pub fn as_str(&self) -> &'static str {
        match self {
            WriteAck::Node => "node",
            WriteAck::Replica => "replica",
        }
    }
}

/// Where read-only commands are sent (Redis Cluster clients' read preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadFrom {
    /// Every command goes to the shard's master.
    #[default]
    Master,
    /// Reads go to a fresh replica; with none fresh they are refused (`-NOREPLICAS`).
    Replica,
    /// Reads go to a fresh replica, or to the master when no replica is fresh.
    PreferReplica,
}

impl ReadFrom {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReadFrom::Master => "master",
            ReadFrom::Replica => "replica",
            ReadFrom::PreferReplica => "prefer-replica",
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            mode: Mode::Cluster,
            seeds: vec!["127.0.0.1:7000".into()],
            sentinels: Vec::new(),
            shards: Vec::new(),
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            connect_timeout_ms: 1000,
            command_timeout_ms: 10_000,
            refresh_interval_ms: 1000,
            max_redirects: 5,
            failover_hold_ms: 5000,
            retry_backoff_ms: 50,
            retry_backoff_max_ms: 500,
            large_value_bytes: MemSize(1 << 20),
            tls: false,
            tls_ca_cert_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            read_from: ReadFrom::Master,
            max_replica_lag_ms: 1000,
            replica_poll_interval_ms: 100,
            read_your_writes: false,
            failover_push: true,
            write_ack: WriteAck::Node,
            min_replicas_ack: 1,
            write_ack_timeout_ms: 1000,
        }
    }
}

impl BackendConfig {
    /// Credentials for the Redis nodes, if a password is configured.
    pub fn node_auth(&self) -> Option<Auth> {
        Auth::from_config(&self.username, &self.password)
    }

    /// Credentials for the Sentinels, if a password is configured.
    pub fn sentinel_auth(&self) -> Option<Auth> {
        Auth::from_config(&self.sentinel_username, &self.sentinel_password)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    /// Each shard's slot ranges: as configured, or an even split in order. `Err((shard, why))`.
    pub fn shard_ranges(&self) -> Result<Vec<Vec<SlotRange>>, (usize, String)> {
        let shards = &self.shards;
        if shards.iter().all(|s| s.slots.is_none()) {
            return Ok(ShardMap::even_ranges(shards.len())
                .into_iter()
                .map(|r| vec![r])
                .collect());
        }
        shards
            .iter()
            .enumerate()
            .map(|(i, s)| parse_ranges(s.slots.as_deref().unwrap_or("")).map_err(|e| (i, e)))
            .collect()
    }
}
