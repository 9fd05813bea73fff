//! The `hive` binary: parses the command line and runs one subcommand, each in a file or folder
//! of its own: serving (`serve/`: `proxy`, `up`), looking at a deployment (`inspect/`:
//! `status`, `check`, `monitor`), `drill/`, `backup`, `init/`, growing and shrinking
//! (`grow/`: `add-shard`, `remove-shard`, `rebalance`, `reshard`). A new subcommand gets a file in
//! the folder of its role and a line in `Cmd`.
#![forbid(unsafe_code)]

mod backup;
mod drill;
mod grow;
mod init;
mod inspect;
mod logging;
mod malloc;
mod serve;
mod target;

use inspect::{check, monitor, status, top};
use serve::{proxy, up};

pub use logging::{init_logging, LogHandle};

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
    /// One screen of the deployment's state; exit 0 healthy, 1 degraded, 2 down.
    Status(status::StatusArgs),
    /// The health-check suite: connectivity, slots, replicas, quorum, persistence, module, data.
    Check(check::CheckArgs),
    /// A live terminal dashboard of the deployment (q quits).
    Monitor(monitor::MonitorArgs),
    /// The proxy's hottest keys and biggest replies, from its sampled requests (q quits).
    Top(top::TopArgs),
    /// Back up every shard of the deployment into one backup (a directory or S3).
    Backup(backup::BackupArgs),
    /// List the backups at a destination, or verify one.
    Backups(backup::BackupsArgs),
    /// Restore a backup onto a running deployment of any shape.
    Restore(backup::RestoreArgs),
    /// Form a cluster (3+ nodes) or a master + replica with sentinels (2 nodes) from running nodes.
    Init(init::InitArgs),
    /// Add an empty master (and its replicas) to the cluster; `hive rebalance` gives it slots.
    AddShard(grow::AddShardArgs),
    /// Move a master's slots to the others, then take it and its replicas out of the cluster.
    RemoveShard(grow::RemoveShardArgs),
    /// Move slots until every master holds its weighted share.
    Rebalance(grow::RebalanceArgs),
    /// Move N slots from one master to another, or finish interrupted moves (--resume).
    Reshard(grow::ReshardArgs),
}

fn main() {
    if let Err(e) = run() {
        // The cause chain on one line: a failed command is an answer, not a crash, so no
        // backtrace even with RUST_BACKTRACE set.
        eprintln!("hive: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Cmd::Proxy(_) | Cmd::Up(_)) {
        malloc::tune();
    }
    match cli.command {
        Cmd::Proxy(a) => proxy::run(a),
        Cmd::Up(a) => up::run(a),
        Cmd::Drill(d) => drill::run(d),
        Cmd::Status(a) => status::run(a),
        Cmd::Check(a) => check::run(a),
        Cmd::Monitor(a) => monitor::run(a),
        Cmd::Top(a) => top::run(a),
        Cmd::Backup(a) => backup::run_backup(a),
        Cmd::Backups(a) => backup::run_backups(a),
        Cmd::Restore(a) => backup::run_restore(a),
        Cmd::Init(a) => init::run(a),
        Cmd::AddShard(a) => grow::run_add_shard(a),
        Cmd::RemoveShard(a) => grow::run_remove_shard(a),
        Cmd::Rebalance(a) => grow::run_rebalance(a),
        Cmd::Reshard(a) => grow::run_reshard(a),
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
