//! Config reload (SIGHUP): what can change live takes effect, what cannot is reported. Keys are
//! compared as TOML values, so a report names keys and never prints a value (passwords).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::state::Shared;

/// Keys a running proxy takes from a reloaded config. Limits apply to connections accepted
/// from then on; the slow log, users and seeds at once.
pub const LIVE_KEYS: &[&str] = &[
    "proxy.max_clients",
    "proxy.client_idle_timeout_s",
    "proxy.max_bulk_len",
    "proxy.max_multibulk_len",
    "proxy.max_pending_per_client",
    "proxy.shutdown_grace_ms",
    "proxy.subscriber_output_limit_bytes",
    "proxy.client_query_buffer_limit",
    "proxy.client_output_buffer_limit",
    "proxy.maxmemory_buffers",
    "proxy.requirepass",
    "proxy.users",
    "proxy.aclfile",
    "proxy.node_poll_interval_ms",
    "proxy.slowlog_slower_than_us",
    "proxy.slowlog_max_len",
    "proxy.hotkeys_sample_every",
    "backend.seeds",
    "backend.large_value_bytes",
    "backend.read_from",
    "backend.max_replica_lag_ms",
    "backend.replica_poll_interval_ms",
    "backend.read_your_writes",
    "log.level",
];

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Changed keys now in effect.
    pub applied: Vec<String>,
    /// Changed keys that keep their old value until a restart.
    pub restart: Vec<String>,
    /// Whether the TLS certificate and key were re-read (always, with a TLS listener).
    pub tls_reloaded: bool,
}

/// Every leaf key of a config, with its value, as `section.key`.
fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(config) {
        for (section, v) in t {
            match v {
                toml::Value::Table(keys) => {
                    for (k, v) in keys {
                        out.insert(format!("{section}.{k}"), v);
                    }
                }
                v => {
                    out.insert(section, v);
                }
            }
        }
    }
    out
}

/// The keys whose values differ between two configs.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl Shared {
    /// Takes a config that `validate` accepted. Users are rebuilt from it when they changed or
    /// come from an ACL file (whose lines may have changed), as ACL LOAD does.
    pub fn reload(&self, new: Config, file: &Path) -> Result<ReloadReport, ConfigError> {
        let old = self.live.load_full();
        let changed = changed_keys(&old, &new);
        let mut report = ReloadReport::default();
        let users_changed = changed.iter().any(|k| {
            matches!(
                k.as_str(),
                "proxy.requirepass" | "proxy.users" | "proxy.aclfile"
            )
        });
        if users_changed || new.proxy.aclfile.is_some() {
            let users = crate::auth::Users::from_config(&new, file)?;
            let before = crate::fleet::acl_lines(&self.auth.users());
            let after = crate::fleet::acl_lines(&users);
            self.auth
                .change(|_| Ok::<_, String>((users, ())))
                .map_err(|reason| ConfigError::Invalid {
                    file: file.into(),
                    key: "proxy.users".into(),
                    reason,
                })?;
            // New users from the file are the fleet's new users, as after ACL LOAD.
            if let Some(f) = self.fleet.as_ref().filter(|_| before != after) {
                f.acl_changed(&self.auth);
            }
        }
        if let Some(tls) = &self.tls {
            tls.reload().map_err(|reason| ConfigError::Invalid {
                file: file.into(),
                key: "proxy.tls_cert_file".into(),
                reason,
            })?;
            report.tls_reloaded = true;
        }
        // Keys that cannot change keep their old values, so what runs matches the report.
        let mut merged = (*old).clone();
        for key in changed {
            if LIVE_KEYS.contains(&key.as_str()) {
                report.applied.push(key);
            } else {
                report.restart.push(key);
            }
        }
        merged.proxy.max_clients = new.proxy.max_clients;
        merged.proxy.client_idle_timeout_s = new.proxy.client_idle_timeout_s;
        merged.proxy.max_bulk_len = new.proxy.max_bulk_len;
        merged.proxy.max_multibulk_len = new.proxy.max_multibulk_len;
        merged.proxy.max_pending_per_client = new.proxy.max_pending_per_client;
        merged.proxy.shutdown_grace_ms = new.proxy.shutdown_grace_ms;
        merged.proxy.subscriber_output_limit_bytes = new.proxy.subscriber_output_limit_bytes;
        merged.proxy.client_query_buffer_limit = new.proxy.client_query_buffer_limit;
        merged.proxy.client_output_buffer_limit = new.proxy.client_output_buffer_limit;
        merged.proxy.maxmemory_buffers = new.proxy.maxmemory_buffers;
        merged.proxy.requirepass = new.proxy.requirepass.clone();
        merged.proxy.users = new.proxy.users.clone();
        merged.proxy.aclfile = new.proxy.aclfile.clone();
        merged.proxy.node_poll_interval_ms = new.proxy.node_poll_interval_ms;
        merged.proxy.slowlog_slower_than_us = new.proxy.slowlog_slower_than_us;
        merged.proxy.slowlog_max_len = new.proxy.slowlog_max_len;
        merged.backend.seeds = new.backend.seeds.clone();
        merged.backend.large_value_bytes = new.backend.large_value_bytes;
        merged.backend.read_from = new.backend.read_from;
        merged.backend.max_replica_lag_ms = new.backend.max_replica_lag_ms;
        merged.backend.replica_poll_interval_ms = new.backend.replica_poll_interval_ms;
        merged.backend.read_your_writes = new.backend.read_your_writes;
        merged.log.level = new.log.level.clone();
        self.slowlog.configure(
            merged.proxy.slowlog_slower_than_us,
            merged.proxy.slowlog_max_len,
        );
        self.plane.live.store(Arc::new(merged.backend.clone()));
        self.plane.node_poll_interval_ms.store(
            merged.proxy.node_poll_interval_ms,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.live.store(Arc::new(merged));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_names_keys_not_values() {
        let old = Config::default();
        let mut new = Config::default();
        new.proxy.requirepass = Some("hunter2".into());
        new.proxy.listen = "127.0.0.1:1".into();
        new.proxy.slowlog_max_len = 5;
        let keys = changed_keys(&old, &new);
        assert_eq!(
            keys,
            ["proxy.listen", "proxy.requirepass", "proxy.slowlog_max_len"]
        );
    }

    #[test]
    fn reload_applies_live_keys_and_reports_the_rest() {
        let shared = Shared::new(Config::default()).unwrap();
        let mut new = Config::default();
        new.proxy.listen = "127.0.0.1:1".into();
        new.proxy.max_clients = 7;
        new.proxy.slowlog_slower_than_us = 0;
        let r = shared.reload(new, Path::new("t.toml")).unwrap();
        assert_eq!(
            r.applied,
            ["proxy.max_clients", "proxy.slowlog_slower_than_us"]
        );
        assert_eq!(r.restart, ["proxy.listen"]);
        let live = shared.live.load();
        assert_eq!(live.proxy.max_clients, 7);
        assert_eq!(live.proxy.listen, Config::default().proxy.listen);
        assert_eq!(shared.slowlog.threshold(), Some(0));
    }
}
