//! The flags that name a deployment, shared by `hive proxy`, `status`, `check` and `monitor`:
//! a config file, or the seeds / sentinels / static masters on the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hive_proxy::config::{Config, Mode, ShardConfig};
use hive_upstream::conn::control::ControlConn;
use hive_upstream::facts::Snapshot;
use hive_upstream::watch::collect;
use hive_upstream::watch::source;
use hive_upstream::Backplane;

#[derive(Args, Clone, Default)]
pub struct Target {
    /// TOML config file (every key is documented in the README).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Seed nodes of the cluster, comma-separated host:port (overrides backend.seeds).
    #[arg(long, value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// Sentinel mode: sentinel addresses, comma-separated (needs --masters).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["cluster", "static_masters"])]
    pub sentinel: Vec<String>,
    /// Sentinel mode: the master names Sentinel monitors, in slot order.
    #[arg(long, value_delimiter = ',', requires = "sentinel")]
    pub masters: Vec<String>,
    /// Static mode: master addresses, comma-separated, in slot order.
    #[arg(long = "static", value_delimiter = ',', conflicts_with = "cluster")]
    pub static_masters: Vec<String>,
}

impl Target {
    /// The config the flags describe, and the name errors should cite for it.
    pub fn config(&self) -> Result<(Config, PathBuf)> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if !self.cluster.is_empty() {
            config.backend.mode = Mode::Cluster;
            config.backend.seeds = self.cluster.clone();
        }
        if !self.sentinel.is_empty() {
            config.backend.mode = Mode::Sentinel;
            config.backend.sentinels = self.sentinel.clone();
            config.backend.shards = self
                .masters
                .iter()
                .cloned()
                .map(ShardConfig::named)
                .collect();
        }
        if !self.static_masters.is_empty() {
            config.backend.mode = Mode::Static;
            config.backend.shards = self
                .static_masters
                .iter()
                .map(|m| ShardConfig::at(m.clone(), Vec::new()))
                .collect();
        }
        let source = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("<command line>"));
        Ok((config, source))
    }

    /// Reads the topology the way the proxy would and returns what a poll of it says.
    pub async fn connect(&self) -> Result<Arc<Backplane>> {
        let (config, source) = self.config()?;
        config.validate(&source)?;
        let plane = Backplane::open(config.backend)
            .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
        source::initial(&plane).await;
        Ok(plane)
    }
}

/// One poll of the deployment behind `plane`.
pub async fn poll(plane: &Backplane) -> Snapshot {
    collect::collect(plane).await
}

/// A running proxy that `status`, `check` and `monitor` also talk to, as a client would.
#[derive(Args, Clone, Default)]
pub struct ProxyArg {
    /// The proxy's address; AUTH with `HIVE_PROXY_PASSWORD` when set (never a flag, so the
    /// password stays out of `ps`).
    #[arg(long)]
    pub proxy: Option<String>,
    /// The proxy user for AUTH (default: the default user).
    #[arg(long)]
    pub proxy_user: Option<String>,
}

/// A connection to the proxy at `addr`, authenticated as `user` when `HIVE_PROXY_PASSWORD` is
/// set.
pub async fn connect_proxy(addr: &str, user: Option<&str>) -> Result<ControlConn, String> {
    let mut c = ControlConn::connect(addr, Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(pw) = std::env::var("HIVE_PROXY_PASSWORD") {
        let r = match user {
            Some(u) => c.call(&["AUTH", u, &pw]).await,
            None => c.call(&["AUTH", &pw]).await,
        };
        r.map_err(|e| e.to_string())?;
    }
    Ok(c)
}
