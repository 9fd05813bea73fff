//! Config validation beyond what serde checks; every error names the file, the key and the
//! reason.

use std::net::SocketAddr;
use std::path::Path;

use hive_common::topology::ShardMap;
use hive_common::SLOT_COUNT;

use super::{Config, ConfigError, Mode};

impl Config {
    /// Checks values serde cannot check.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        let plaintext_off = self.proxy.listen.is_empty() && self.proxy.tls_listen.is_some();
        if !plaintext_off && self.proxy.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "proxy.listen",
                format!("`{}` is not an ip:port address", self.proxy.listen),
            ));
        }
        if let Some(l) = &self.proxy.tls_listen {
            if l.parse::<SocketAddr>().is_err() {
                return Err(bad(
                    "proxy.tls_listen",
                    format!("`{l}` is not an ip:port address"),
                ));
            }
        }
        if let Some(l) = &self.proxy.admin_listen {
            if l.parse::<SocketAddr>().is_err() {
                return Err(bad(
                    "proxy.admin_listen",
                    format!("`{l}` is not an ip:port address"),
                ));
            }
        }
        if self.proxy.node_poll_interval_ms < 100 {
            return Err(bad(
                "proxy.node_poll_interval_ms",
                "must be at least 100".into(),
            ));
        }
        self.validate_backend(file)?;
        self.validate_fleet(file)?;
        self.validate_cache(file)?;
        if self.proxy.max_clients == 0 {
            return Err(bad("proxy.max_clients", "must be at least 1".into()));
        }
        if self.proxy.max_pending_per_client == 0 {
            return Err(bad(
                "proxy.max_pending_per_client",
                "must be at least 1".into(),
            ));
        }
        if self.proxy.max_bulk_len == 0 || self.proxy.max_bulk_len > 1 << 31 {
            return Err(bad(
                "proxy.max_bulk_len",
                "must be between 1 and 2147483648".into(),
            ));
        }
        if self.proxy.max_multibulk_len == 0 || self.proxy.max_multibulk_len > i32::MAX as usize {
            return Err(bad(
                "proxy.max_multibulk_len",
                "must be between 1 and 2147483647".into(),
            ));
        }
        if self.proxy.subscriber_output_limit_bytes < 1024 {
            return Err(bad(
                "proxy.subscriber_output_limit_bytes",
                "must be at least 1024".into(),
            ));
        }
        // Redis's own minimum for client-query-buffer-limit.
        if self.proxy.client_query_buffer_limit.0 < 1 << 20 {
            return Err(bad(
                "proxy.client_query_buffer_limit",
                "must be at least 1mb".into(),
            ));
        }
        let out = self.proxy.client_output_buffer_limit;
        if out.hard != 0 && out.soft > out.hard {
            return Err(bad(
                "proxy.client_output_buffer_limit",
                "the soft limit must not be above the hard limit".into(),
            ));
        }
        if self.backend.large_value_bytes.0 < 64 << 10 {
            return Err(bad(
                "backend.large_value_bytes",
                "must be at least 64kb".into(),
            ));
        }
        if self.backend.connect_timeout_ms == 0 || self.backend.command_timeout_ms == 0 {
            let key = if self.backend.connect_timeout_ms == 0 {
                "backend.connect_timeout_ms"
            } else {
                "backend.command_timeout_ms"
            };
            return Err(bad(key, "must be greater than 0".into()));
        }
        if self.backend.refresh_interval_ms < 10 {
            return Err(bad(
                "backend.refresh_interval_ms",
                "must be at least 10".into(),
            ));
        }
        if !(10..=60_000).contains(&self.backend.replica_poll_interval_ms) {
            return Err(bad(
                "backend.replica_poll_interval_ms",
                "must be between 10 and 60000".into(),
            ));
        }
        if self.backend.retry_backoff_max_ms < self.backend.retry_backoff_ms.max(1) {
            return Err(bad(
                "backend.retry_backoff_max_ms",
                "must be at least backend.retry_backoff_ms (and at least 1)".into(),
            ));
        }
        if self.backend.max_replica_lag_ms == 0 {
            return Err(bad(
                "backend.max_replica_lag_ms",
                "must be at least 1".into(),
            ));
        }
        if self.backend.min_replicas_ack == 0 {
            return Err(bad(
                "backend.min_replicas_ack",
                "must be at least 1 (write_ack = \"node\" is the setting without replicas)".into(),
            ));
        }
        // WAIT's timeout must end before the command timeout declares the connection dead.
        let ack = self.backend.write_ack_timeout_ms;
        if ack == 0 || ack >= self.backend.command_timeout_ms {
            return Err(bad(
                "backend.write_ack_timeout_ms",
                "must be at least 1 and less than backend.command_timeout_ms".into(),
            ));
        }
        Ok(())
    }

    fn validate_backend(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: String, reason: String| ConfigError::Invalid {
            file: file.into(),
            key,
            reason,
        };
        let check_addrs =
            |key: &str, addrs: &[String]| match addrs.iter().find(|a| !valid_host_port(a)) {
                Some(a) => Err(bad(key.into(), format!("`{a}` is not a host:port address"))),
                None => Ok(()),
            };
        let b = &self.backend;
        match b.mode {
            Mode::Cluster => {
                if b.seeds.is_empty() {
                    return Err(bad(
                        "backend.seeds".into(),
                        "must list at least one node".into(),
                    ));
                }
                check_addrs("backend.seeds", &b.seeds)?;
                if !b.shards.is_empty() {
                    return Err(bad(
                        "backend.shards".into(),
                        "is for sentinel and static modes; cluster mode reads the slots from the cluster".into(),
                    ));
                }
                return Ok(());
            }
            Mode::Sentinel => {
                if b.sentinels.is_empty() {
                    return Err(bad(
                        "backend.sentinels".into(),
                        "must list at least one sentinel".into(),
                    ));
                }
                check_addrs("backend.sentinels", &b.sentinels)?;
            }
            Mode::Static => {}
        }
        if b.shards.is_empty() {
            return Err(bad(
                "backend.shards".into(),
                "must list at least one shard".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in b.shards.iter().enumerate() {
            let key = |k: &str| format!("backend.shards[{i}].{k}");
            match b.mode {
                Mode::Sentinel => {
                    let Some(name) = s.name.as_deref().filter(|n| !n.is_empty()) else {
                        return Err(bad(
                            key("name"),
                            "sentinel mode needs the master name".into(),
                        ));
                    };
                    if !names.insert(name) {
                        return Err(bad(key("name"), format!("`{name}` is listed twice")));
                    }
                    if s.master.is_some() {
                        return Err(bad(
                            key("master"),
                            "sentinel mode learns the master from Sentinel; give `name`".into(),
                        ));
                    }
                }
                _ => {
                    let Some(m) = s.master.as_deref() else {
                        return Err(bad(
                            key("master"),
                            "static mode needs the master's host:port".into(),
                        ));
                    };
                    check_addrs(&key("master"), &[m.to_string()])?;
                    check_addrs(&key("replicas"), &s.replicas)?;
                }
            }
        }
        let given = b.shards.iter().filter(|s| s.slots.is_some()).count();
        if given != 0 && given != b.shards.len() {
            return Err(bad(
                "backend.shards".into(),
                "give `slots` for every shard or for none".into(),
            ));
        }
        let ranges = self
            .backend
            .shard_ranges()
            .map_err(|(i, reason)| bad(format!("backend.shards[{i}].slots"), reason))?;
        let placeholder = |i: usize| hive_common::topology::Shard {
            master: format!("shard{i}"),
            replicas: Vec::new(),
        };
        let map = ShardMap::new(
            ranges
                .into_iter()
                .enumerate()
                .map(|(i, r)| (placeholder(i), r))
                .collect(),
        )
        .map_err(|e| bad("backend.shards".into(), format!("slot ranges: {e}")))?;
        if map.unassigned() > 0 {
            return Err(bad(
                "backend.shards".into(),
                format!(
                    "slot ranges leave {} of {SLOT_COUNT} slots unassigned",
                    map.unassigned()
                ),
            ));
        }
        Ok(())
    }
}

/// `host:port`, with an IPv6 host in brackets (`[::1]:7000`), as Hive writes addresses.
pub(super) fn valid_host_port(s: &str) -> bool {
    match hive_common::addr::split(s) {
        Some((host, port)) => {
            !host.is_empty()
                && (!host.contains(':') || s.starts_with('['))
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}
