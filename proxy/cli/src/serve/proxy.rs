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

use crate::serve::{systemd, upgrade};
use crate::target::Target;
use crate::{init_logging, wait_for_signal, LogHandle};

#[derive(Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    target: Target,
    /// Listen address (overrides proxy.listen).
    #[arg(long)]
    listen: Option<String>,
    /// The host:port cluster clients are given for this Hive in a fleet (overrides
    /// proxy.announce; in Kubernetes, the pod's IP from the downward API).
    #[arg(long, env = "HIVE_ANNOUNCE")]
    announce: Option<String>,
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
    /// Write this process's pid here once it accepts (an upgraded process writes its own).
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Upgrade the running proxy whose pid `--pidfile` holds (as SIGUSR2 does): start the
    /// binary again, hand it the listening sockets, and drain the old process.
    #[arg(long, requires = "pidfile")]
    upgrade: bool,
}

impl ProxyArgs {
    /// The config the flags and file give, validated.
    fn config(&self) -> Result<(Config, PathBuf)> {
        let (mut config, source) = self.target.config()?;
        if let Some(l) = &self.listen {
            config.proxy.listen = l.clone();
        }
        if let Some(a) = &self.announce {
            config.proxy.announce = Some(a.clone());
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
    if a.upgrade {
        return upgrade::request(a.pidfile.as_deref().expect("clap requires --pidfile"));
    }
    upgrade::remember_exe();
    // Sockets handed over by the process this one upgrades, or passed by systemd.
    let (mut handover, inherited) = match upgrade::take_over()? {
        Some((stream, sockets)) => (Some(stream), sockets),
        None => (None, systemd::inherited()?),
    };
    // A process that upgrades another tells it why it could not start, so the upgrade's
    // error names the reason.
    let started = (|| -> Result<_> {
        let (config, _) = a.config()?;
        let log = init_logging(&config.log.level, config.log.format);
        let listen = config.proxy.listen.clone();
        let (stop, rx) = watch::channel(false);
        let running = server::start_with(config, inherited, rx)
            .with_context(|| format!("cannot listen on {listen}"))?;
        Ok((log, stop, running))
    })();
    let (log, stop, mut running) = match started {
        Ok(s) => s,
        Err(e) => {
            if let Some(h) = handover.take() {
                upgrade::failed(h, &format!("{e:#}"));
            }
            return Err(e);
        }
    };
    match running.tls_addr {
        Some(tls) => info!(listen = %running.addr, tls = %tls, "hive proxy ready"),
        None => info!(listen = %running.addr, "hive proxy ready"),
    }
    if let Some(admin) = running.admin_addr {
        info!(admin = %admin, "admin listener ready: /metrics /healthz /readyz");
    }
    if let Some(h) = handover {
        upgrade::ready(h)?;
        info!(pid = std::process::id(), "upgrade: this process serves now");
    }
    if let Some(p) = &a.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("write the pid file {}", p.display()))?;
    }
    systemd::notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("serving on {}", running.addr)),
    ]);
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = running.shared.clone();
    let sockets = std::mem::take(&mut running.sockets);
    signals.block_on(async {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("installing a SIGHUP handler works on Unix");
        let mut usr2 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
                .expect("installing a SIGUSR2 handler works on Unix");
        loop {
            tokio::select! {
                _ = wait_for_signal() => break,
                _ = usr2.recv() => {
                    info!("SIGUSR2: upgrading: starting the new process");
                    match upgrade::hand_over(&sockets) {
                        Ok(pid) => {
                            info!(pid, "upgrade: the new process accepts; draining this one");
                            // systemd follows the new process as the service's main one
                            // (only the main process may say so under NotifyAccess=main).
                            systemd::notify(&[NotifyState::MainPid(pid)]);
                            shared
                                .handed_over
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            let why = format!("{e:#}");
                            warn!(error = %why, "upgrade failed; this process keeps serving");
                            if let Some(p) = &a.pidfile {
                                let _ = std::fs::write(upgrade::error_file(p), &why);
                            }
                        }
                    }
                }
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
    // Closed here, so once the drain is done nothing of this process holds them.
    drop(sockets);
    let _ = stop.send(true);
    running.join();
    if let Some(p) = &a.pidfile {
        // Only if it is still ours: an upgraded process has written its own.
        if std::fs::read_to_string(p).is_ok_and(|t| t.trim() == std::process::id().to_string()) {
            let _ = std::fs::remove_file(p);
        }
    }
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
