//! The `hive` binary: parses the command line and runs one subcommand, each in a file of its
//! own (`proxy`, `up`, `drill`). A new subcommand gets a file here and a line in `Cmd`.
#![forbid(unsafe_code)]

mod drill;
mod malloc;
mod proxy;
mod up;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Serve: one endpoint in front of a Redis Cluster, Sentinel groups or static masters.
    Proxy(proxy::ProxyArgs),
    /// Start a local 3-master + 3-replica deployment on loopback with the proxy in front.
    Up(up::UpArgs),
    /// Operational drills against a running proxy.
    #[command(subcommand)]
    Drill(drill::DrillCmd),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Cmd::Proxy(_) | Cmd::Up(_)) {
        malloc::tune();
    }
    match cli.command {
        Cmd::Proxy(a) => proxy::run(a),
        Cmd::Up(a) => up::run(a),
        Cmd::Drill(d) => drill::run(d),
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

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
