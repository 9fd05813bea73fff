//! The `hive` binary: `hive proxy` serves; `hive up` runs a local cluster with the proxy in front.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use hive_proxy::config::{Config, Mode, ShardConfig};
use hive_proxy::drill::{self as drills, DrillOpts};
use hive_proxy::localcluster::{self, ClusterOpts, LocalCluster};
use hive_proxy::localsentinel::{GroupOpts, LocalGroups};
use hive_proxy::server::{self, ProxyHandle};
use hive_proxy::upstream::Auth;
use tokio::sync::watch;
use tracing::info;

#[derive(Parser)]
#[command(
    name = "hive",
    version,
    about = "A cluster-aware Redis proxy and its operator tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve: one endpoint in front of a Redis Cluster.
    Proxy(ProxyArgs),
    /// Start a local 3-master + 3-replica deployment on loopback with the proxy in front.
    Up(UpArgs),
    /// Operational drills against a running proxy.
    #[command(subcommand)]
    Drill(DrillCmd),
}

#[derive(Subcommand)]
enum DrillCmd {
    /// Force a failover of one shard while writers run through the proxy; report the outage.
    Failover(DrillArgs),
}

#[derive(Args)]
struct DrillArgs {
    /// The proxy to write through.
    #[arg(long, default_value = "127.0.0.1:6380")]
    proxy: String,
    /// The shard to fail over (its name in INFO: the Sentinel master name, or the master address).
    #[arg(long)]
    group: Option<String>,
    /// Kill -9 the shard's master (local nodes only) instead of SENTINEL/CLUSTER FAILOVER.
    #[arg(long)]
    kill: bool,
    /// How long the writers run, in seconds.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Password of the nodes and sentinels, if any.
    #[arg(long)]
    password: Option<String>,
}

#[derive(Args)]
struct ProxyArgs {
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UpMode {
    /// A Redis Cluster (3 masters + 3 replicas).
    Cluster,
    /// 3 master/replica groups watched by 3 sentinels (quorum 2).
    Sentinel,
    /// 3 standalone masters, each with a replica, sharded by the proxy.
    Static,
}

#[derive(Args)]
struct UpArgs {
    #[arg(long, value_enum, default_value = "cluster")]
    mode: UpMode,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:6380")]
    listen: String,
    /// First Redis port; nodes use this and the next five.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    #[arg(long, default_value_t = 3)]
    masters: usize,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Data directory (default: a new temporary directory, removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Proxy(a) => proxy(a),
        Cmd::Up(a) => up(a),
        Cmd::Drill(DrillCmd::Failover(a)) => drill(a),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn proxy(a: ProxyArgs) -> Result<()> {
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
    info!(listen = %running.addr, "hive proxy ready");
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    signals.block_on(wait_for_signal());
    info!("shutting down: finishing in-flight requests");
    let _ = stop.send(true);
    running.join();
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn up(a: UpArgs) -> Result<()> {
    init_logging("info");
    let tmp;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::Builder::new().prefix("hive-up-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut config = Config::default();
    config.proxy.listen = a.listen.clone();
    let module: Vec<String> = match localcluster::module_path() {
        Some(so) => {
            println!("loading hive-module from {}", so.display());
            vec!["--loadmodule".into(), so.display().to_string()]
        }
        None => {
            println!("hive-module is not built (cargo build -p hive-module); starting the nodes without it");
            Vec::new()
        }
    };
    // Whichever deployment runs stays alive until the proxy is gone.
    let mut cluster = None;
    let mut groups = None;
    let description = match a.mode {
        UpMode::Cluster => {
            println!(
                "starting a cluster of {} masters + {} replicas each on 127.0.0.1:{}.. (data in {})",
                a.masters, a.replicas, a.port, dir.display()
            );
            let c = LocalCluster::start(&ClusterOpts {
                masters: a.masters,
                replicas: a.replicas,
                base_port: Some(a.port),
                node_timeout_ms: 2000,
                dir: dir.clone(),
                extra: module.clone(),
            })?;
            config.backend.seeds = c.master_addrs();
            let d = format!(
                "a {}-node Redis Cluster: {}",
                c.nodes.len(),
                c.addrs().join(" ")
            );
            cluster = Some(c);
            d
        }
        UpMode::Sentinel | UpMode::Static => {
            let sentinels = if a.mode == UpMode::Sentinel { 3 } else { 0 };
            println!(
                "starting {} groups (master + {} replicas) and {sentinels} sentinels on 127.0.0.1:{}.. (data in {})",
                a.masters, a.replicas, a.port, dir.display()
            );
            let mut opts = GroupOpts::new(a.masters, sentinels, dir.clone());
            opts.replicas = a.replicas;
            opts.base_port = Some(a.port);
            opts.extra = module.clone();
            let g = LocalGroups::start(&opts)?;
            let d = if a.mode == UpMode::Sentinel {
                config.backend.mode = Mode::Sentinel;
                config.backend.sentinels = g.sentinel_addrs();
                config.backend.shards = g.sentinel_shards();
                format!(
                    "{} Sentinel groups ({}); sentinels {}",
                    g.groups.len(),
                    g.names().join(", "),
                    g.sentinel_addrs().join(" ")
                )
            } else {
                config.backend.mode = Mode::Static;
                config.backend.shards = g.static_shards();
                format!(
                    "{} static masters: {}",
                    g.groups.len(),
                    g.initial_masters().join(" ")
                )
            };
            groups = Some(g);
            d
        }
    };
    config.validate(std::path::Path::new("<hive up>"))?;
    let proxy = ProxyHandle::start(config)
        .with_context(|| format!("cannot start the proxy on {}", a.listen))?;
    println!(
        "\nHive is up: proxy on {} in front of {description}",
        proxy.addr
    );
    println!(
        "  connect:   redis-cli -h {} -p {}",
        proxy.addr.ip(),
        proxy.addr.port()
    );
    println!(
        "  benchmark: redis-benchmark -h {} -p {} -t set,get -q",
        proxy.addr.ip(),
        proxy.addr.port()
    );
    println!("  drill:     hive drill failover --proxy {}", proxy.addr);
    println!("Press Ctrl-C to stop and remove everything.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_for_signal());
    println!("stopping");
    drop(proxy);
    drop(cluster);
    drop(groups);
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}

fn drill(a: DrillArgs) -> Result<()> {
    let opts = DrillOpts {
        proxy: a.proxy,
        group: a.group,
        kill: a.kill,
        duration: Duration::from_secs(a.duration.max(2)),
        writers: a.writers,
        auth: a.password.map(|p| Auth {
            username: None,
            password: p,
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(drills::failover(opts))?;
    println!("{report}");
    if report.missing > 0 {
        anyhow::bail!(
            "{} acknowledged writes are missing after the failover",
            report.missing
        );
    }
    Ok(())
}
