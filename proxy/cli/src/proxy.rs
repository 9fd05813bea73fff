//! `hive proxy`: serve, with the config file's settings and the flags that override them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hive_proxy::config::{Config, Mode, ShardConfig};
use hive_proxy::server;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{init_logging, wait_for_signal};

#[derive(Args)]
pub struct ProxyArgs {
    /// TOML config file (every key is documented in the README).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Seed nodes of the cluster, comma-separated host:port (overrides backend.seeds).
    #[arg(long, value_delimiter = ',')]
    cluster: Vec<String>,
    /// Sentinel mode: sentinel addresses, comma-separated (needs --masters).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["cluster", "static_masters"])]
    sentinel: Vec<String>,
    /// Sentinel mode: the master names Sentinel monitors, in slot order.
    #[arg(long, value_delimiter = ',', requires = "sentinel")]
    masters: Vec<String>,
    /// Static mode: master addresses, comma-separated, in slot order.
    #[arg(long = "static", value_delimiter = ',', conflicts_with = "cluster")]
    static_masters: Vec<String>,
    /// Listen address (overrides proxy.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Worker threads, 0 = half the CPUs, at least one (overrides proxy.threads).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: ProxyArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if !a.cluster.is_empty() {
        config.backend.mode = Mode::Cluster;
        config.backend.seeds = a.cluster;
    }
    if !a.sentinel.is_empty() {
        config.backend.mode = Mode::Sentinel;
        config.backend.sentinels = a.sentinel;
        config.backend.shards = a.masters.into_iter().map(ShardConfig::named).collect();
    }
    if !a.static_masters.is_empty() {
        config.backend.mode = Mode::Static;
        config.backend.shards = a
            .static_masters
            .into_iter()
            .map(|m| ShardConfig::at(m, Vec::new()))
            .collect();
    }
    if let Some(l) = a.listen {
        config.proxy.listen = l;
    }
    if let Some(t) = a.threads {
        config.proxy.threads = t;
    }
    let source = a
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("<command line>"));
    config.validate(&source)?;
    init_logging(&config.log.level);
    let listen = config.proxy.listen.clone();
    let (stop, rx) = watch::channel(false);
    let running =
        server::start(config, rx).with_context(|| format!("cannot listen on {listen}"))?;
    match running.tls_addr {
        Some(tls) => info!(listen = %running.addr, tls = %tls, "hive proxy ready"),
        None => info!(listen = %running.addr, "hive proxy ready"),
    }
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = running.shared.clone();
    signals.block_on(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("installing a SIGHUP handler works on Unix");
        // SIGHUP re-reads the TLS certificate and key; new connections get them.
        loop {
            tokio::select! {
                _ = wait_for_signal() => break,
                _ = hup.recv() => match &shared.tls {
                    Some(tls) => match tls.reload() {
                        Ok(()) => info!("SIGHUP: TLS certificate and key reloaded"),
                        Err(e) => warn!(error = %e, "SIGHUP: TLS files not reloaded; the old ones stay in use"),
                    },
                    None => info!("SIGHUP: no TLS listener, nothing to reload"),
                },
            }
        }
    });
    info!("shutting down: finishing in-flight requests");
    let _ = stop.send(true);
    running.join();
    Ok(())
}
