//! The `hive` binary: `hive proxy` serves; `hive up` runs a local cluster with the proxy in front.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use hive_proxy::config::Config;
use hive_proxy::localcluster::{ClusterOpts, LocalCluster};
use hive_proxy::server::{self, ProxyHandle};
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
    /// Start a local 3-master + 3-replica cluster on loopback with the proxy in front.
    Up(UpArgs),
}

#[derive(Args)]
struct ProxyArgs {
    /// TOML config file (every key is documented in the README).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Seed nodes of the cluster, comma-separated host:port (overrides backend.seeds).
    #[arg(long, value_delimiter = ',')]
    cluster: Vec<String>,
    /// Listen address (overrides proxy.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Worker threads, 0 = one per CPU (overrides proxy.threads).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct UpArgs {
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
        config.backend.seeds = a.cluster;
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
    let rt = server::runtime(config.proxy.threads)?;
    rt.block_on(async move {
        let listen = config.proxy.listen.clone();
        let (listener, shared) = server::bind(config)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        info!(listen = %listener.local_addr()?, "hive proxy ready");
        let (stop, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutting down: finishing in-flight requests");
            let _ = stop.send(true);
        });
        server::serve(listener, shared, rx).await;
        Ok(())
    })
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
    println!(
        "starting {} masters + {} replicas each on 127.0.0.1:{}.. (data in {})",
        a.masters,
        a.replicas,
        a.port,
        dir.display()
    );
    let cluster = LocalCluster::start(&ClusterOpts {
        masters: a.masters,
        replicas: a.replicas,
        base_port: Some(a.port),
        node_timeout_ms: 2000,
        dir: dir.clone(),
        extra: Vec::new(),
    })?;
    let mut config = Config::default();
    config.proxy.listen = a.listen.clone();
    config.backend.seeds = cluster.master_addrs();
    let proxy = ProxyHandle::start(config)
        .with_context(|| format!("cannot start the proxy on {}", a.listen))?;
    println!(
        "\nHive is up: proxy on {} in front of a {}-node cluster",
        proxy.addr,
        cluster.nodes.len()
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
    println!("  nodes:     {}", cluster.addrs().join(" "));
    println!("Press Ctrl-C to stop and remove everything.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_for_signal());
    println!("stopping");
    drop(proxy);
    drop(cluster);
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}
