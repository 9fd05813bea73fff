//! Proxy configuration: the TOML file, defaults, and validation that names file, key and reason.

use std::net::SocketAddr;
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Cluster,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub backend: BackendConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on.
    pub listen: String,
    /// Worker threads; 0 means one per CPU.
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    pub mode: Mode,
    /// Cluster nodes to discover the topology from (`host:port`).
    pub seeds: Vec<String>,
    pub connect_timeout_ms: u64,
    /// A backend that leaves a request unanswered this long is treated as dead.
    pub command_timeout_ms: u64,
    /// Re-read the cluster topology this often even when nothing suggests a change.
    pub refresh_interval_ms: u64,
    /// MOVED/ASK redirects followed for one request before giving up.
    pub max_redirects: u8,
    /// Retries of TRYAGAIN, CLUSTERDOWN and unsent requests to an unreachable node.
    pub max_retries: u8,
    /// First retry delay; doubled on each further retry.
    pub retry_backoff_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `hive_proxy=debug`. `RUST_LOG` overrides it.
    pub level: String,
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
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            mode: Mode::Cluster,
            seeds: vec!["127.0.0.1:7000".into()],
            connect_timeout_ms: 1000,
            command_timeout_ms: 5000,
            refresh_interval_ms: 1000,
            max_redirects: 5,
            max_retries: 6,
            retry_backoff_ms: 50,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
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

    /// Checks values serde cannot check.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        if self.proxy.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "proxy.listen",
                format!("`{}` is not an ip:port address", self.proxy.listen),
            ));
        }
        if self.backend.seeds.is_empty() {
            return Err(bad("backend.seeds", "must list at least one node".into()));
        }
        for s in &self.backend.seeds {
            if !valid_host_port(s) {
                return Err(bad(
                    "backend.seeds",
                    format!("`{s}` is not a host:port address"),
                ));
            }
        }
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
        if self.proxy.max_multibulk_len == 0 {
            return Err(bad("proxy.max_multibulk_len", "must be at least 1".into()));
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
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.proxy.max_bulk_len,
            max_multibulk_len: self.proxy.max_multibulk_len,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.backend.connect_timeout_ms)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.backend.command_timeout_ms)
    }
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("hive.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_are_valid() {
        let c = parse("").unwrap();
        assert_eq!(c.proxy.listen, "127.0.0.1:6380");
        assert_eq!(c.backend.mode, Mode::Cluster);
    }

    #[test]
    fn config_full_file_parses() {
        let c = parse(
            "[proxy]\nlisten = \"127.0.0.1:7777\"\nmax_clients = 5\n\
             [backend]\nmode = \"cluster\"\nseeds = [\"127.0.0.1:7000\", \"localhost:7001\"]\n\
             [log]\nlevel = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(c.proxy.max_clients, 5);
        assert_eq!(c.backend.seeds.len(), 2);
    }

    #[test]
    fn config_example_file_is_valid_and_complete() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/hive.toml"));
        let c = Config::load(path).unwrap();
        let d = Config::default();
        assert_eq!(c.proxy.max_clients, d.proxy.max_clients);
        assert_eq!(c.backend.max_retries, d.backend.max_retries);
        // Every key the config has is shown in the example.
        let text = std::fs::read_to_string(path).unwrap();
        let all = toml::to_string(&d).unwrap();
        for line in all.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(
                text.contains(&format!("{key} = ")),
                "deploy/hive.toml lacks `{key}`"
            );
        }
    }

    #[test]
    fn config_errors_name_file_key_and_reason() {
        let e = parse("[proxy]\nmax_clients = \"many\"\n").unwrap_err();
        assert!(
            e.starts_with("hive.toml: key `proxy.max_clients`: invalid type"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[proxy]\nlisen = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = parse("[backend]\nseeds = []\n").unwrap_err();
        assert_eq!(
            e,
            "hive.toml: key `backend.seeds`: must list at least one node"
        );
        let e = parse("[backend]\nseeds = [\"nohost\"]\n").unwrap_err();
        assert!(e.contains("`nohost` is not a host:port address"), "{e}");
        let e = parse("[backend]\nmode = \"mesh\"\n").unwrap_err();
        assert!(
            e.starts_with("hive.toml: key `backend.mode`: unknown variant `mesh`"),
            "{e}"
        );
        let e = parse("[proxy]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(e.contains("key `proxy.listen`"), "{e}");
    }
}
