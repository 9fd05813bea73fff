//! `hive proxy`: serve, with the config file's settings and the flags that override them;
//! SIGHUP re-reads the config file (`--check-config` only validates one). Under systemd it
//! reports its state and takes the sockets it is given (`systemd`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use hive_proxy::config::Config;
use hive_proxy::server::{self, Shared};
use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::serve::systemd;
use crate::target::Target;
use crate::{init_logging, wait_for_signal, LogHandle};

#[derive(Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    target: Target,
    /// Listen address (overrides proxy.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Worker threads, 0 = half the CPUs, at least one (overrides proxy.threads).
    #[arg(long)]
    threads: Option<usize>,
    /// The admin HTTP listener for /metrics, /healthz and /readyz (overrides
    /// proxy.admin_listen).
    #[arg(long)]
    admin: Option<String>,
    /// Validate this config file and exit: 0 when it is valid, else 1 with the file, key and
    /// reason.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
}

impl ProxyArgs {
    /// The config the flags and file give, validated.
    fn config(&self) -> Result<(Config, PathBuf)> {
        let (mut config, source) = self.target.config()?;
        if let Some(l) = &self.listen {
            config.proxy.listen = l.clone();
        }
        if let Some(t) = self.threads {
            config.proxy.threads = t;
        }
        if let Some(a) = &self.admin {
            config.proxy.admin_listen = Some(a.clone());
        }
        server::check(&config, &source)?;
        Ok((config, source))
    }
}

pub fn run(a: ProxyArgs) -> Result<()> {
    if let Some(file) = &a.check_config {
        server::check(&Config::load(file)?, file)?;
        println!("{}: the config is valid", file.display());
        return Ok(());
    }
    let (config, _) = a.config()?;
    let log = init_logging(&config.log.level, config.log.format);
    let listen = config.proxy.listen.clone();
    let (stop, rx) = watch::channel(false);
    let inherited = systemd::inherited()?;
    let running = server::start_with(config, inherited, rx)
        .with_context(|| format!("cannot listen on {listen}"))?;
    match running.tls_addr {
        Some(tls) => info!(listen = %running.addr, tls = %tls, "hive proxy ready"),
        None => info!(listen = %running.addr, "hive proxy ready"),
    }
    if let Some(admin) = running.admin_addr {
        info!(admin = %admin, "admin listener ready: /metrics /healthz /readyz");
    }
    systemd::notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("serving on {}", running.addr)),
    ]);
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = running.shared.clone();
    signals.block_on(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("installing a SIGHUP handler works on Unix");
        loop {
            tokio::select! {
                _ = wait_for_signal() => break,
                _ = hup.recv() => {
                    systemd::reloading();
                    reload(&a, &shared, &log);
                    systemd::notify(&[NotifyState::Ready]);
                }
            }
        }
    });
    info!("shutting down: finishing in-flight requests");
    systemd::notify(&[NotifyState::Stopping]);
    let _ = stop.send(true);
    running.join();
    Ok(())
}

/// SIGHUP: re-reads the config file (with the command line's overrides); a config that does
/// not validate changes nothing. Without a file only the TLS files are re-read.
fn reload(a: &ProxyArgs, shared: &Shared, log: &LogHandle) {
    let file = a.target.config.as_deref();
    let (config, source) = match file {
        Some(_) => match a.config() {
            Ok(c) => c,
            Err(e) => {
                return warn!(error = %format!("{e:#}"), "SIGHUP: config not reloaded; the running one stays")
            }
        },
        None => (
            (**shared.live.load()).clone(),
            PathBuf::from("<command line>"),
        ),
    };
    let level = config.log.level.clone();
    match shared.reload(config, Path::new(&source)) {
        Ok(r) => {
            log.set_level(&level);
            info!(
                file = %source.display(),
                applied = %r.applied.join(","),
                needs_restart = %r.restart.join(","),
                tls_reloaded = r.tls_reloaded,
                "SIGHUP: config reloaded"
            );
            if !r.restart.is_empty() {
                warn!(keys = %r.restart.join(","), "SIGHUP: these keys change only on a restart; their old values stay in effect");
            }
        }
        Err(e) => warn!(error = %e, "SIGHUP: config not reloaded; the running one stays"),
    }
}
