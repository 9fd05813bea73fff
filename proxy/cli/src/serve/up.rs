//! `hive up`: a local deployment (cluster, sentinel or static) with hive-module loaded and the
//! proxy in front, torn down on Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use hive_local::{module_path, ClusterOpts, GroupOpts, LocalCluster, LocalGroups};
use hive_proxy::config::{Config, Mode};
use hive_proxy::server::ProxyHandle;

use crate::{init_logging, wait_for_signal};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpMode {
    /// A Redis Cluster (3 masters + 3 replicas).
    Cluster,
    /// 3 master/replica groups watched by 3 sentinels (quorum 2).
    Sentinel,
    /// 3 standalone masters, each with a replica, sharded by the proxy.
    Static,
}

#[derive(Args)]
pub struct UpArgs {
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
    /// The proxy's admin HTTP listener (/metrics, /healthz, /readyz).
    #[arg(long)]
    admin: Option<String>,
}

/// The persistence settings of `deploy/redis/*.conf`.
const PERSISTENCE: [&str; 4] = ["--appendonly", "yes", "--save", "900 1 300 10 60 10000"];

pub fn run(a: UpArgs) -> Result<()> {
    init_logging("info", hive_proxy::config::LogFormat::Text);
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
    config.proxy.admin_listen = a.admin.clone();
    let mut module: Vec<String> = match module_path() {
        Some(so) => {
            println!("loading hive-module from {}", so.display());
            vec!["--loadmodule".into(), so.display().to_string()]
        }
        None => {
            println!("hive-module is not built (cargo build -p hive-module); starting the nodes without it");
            Vec::new()
        }
    };
    // AOF + RDB as the templates in deploy/redis set them, so `hive check` passes here too.
    module.extend(PERSISTENCE.iter().map(|s| s.to_string()));
    // Whichever deployment runs stays alive until the proxy is gone.
    let mut cluster = None;
    let mut groups = None;
    let description = match a.mode {
        UpMode::Cluster => {
            println!(
                "starting a cluster of {} masters + {} replicas each on 127.0.0.1:{}.. (data in {})",
                a.masters, a.replicas, a.port, dir.display()
            );
            let mut opts = ClusterOpts::new(a.masters, a.replicas, dir.clone());
            opts.base_port = Some(a.port);
            opts.extra = module.clone();
            let c = LocalCluster::start(&opts)?;
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
    hive_proxy::server::check(&config, std::path::Path::new("<hive up>"))?;
    // The deployment as a config file, so `hive status/check/monitor --config` find it.
    let toml_path = dir.join("hive.toml");
    std::fs::write(&toml_path, toml::to_string(&config)?)
        .with_context(|| format!("cannot write {}", toml_path.display()))?;
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
    println!(
        "  status:    hive status --config {} --proxy {}",
        toml_path.display(),
        proxy.addr
    );
    println!(
        "  monitor:   hive monitor --config {} --proxy {}",
        toml_path.display(),
        proxy.addr
    );
    if let Some(admin) = proxy.admin_addr {
        println!("  metrics:   curl http://{admin}/metrics");
    }
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
