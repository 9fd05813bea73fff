//! The flags of the growing commands: the deployment (as for `hive backup`), what to move,
//! and how (`--dry-run`, `--json`, `--resume`, batch sizes, the big-key size).

use anyhow::{anyhow, Result};
use clap::Args;
use hive_proxy::config::parse_memsize;
use hive_reshard::run::{Batching, Options};

use crate::target::Target;

#[derive(Args, Clone, Default)]
pub struct MoveFlags {
    /// Print the plan (slots, keys and bytes per move; big keys) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan and the result as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// First finish the slots an interrupted run left open.
    #[arg(long)]
    pub resume: bool,
    /// Keys per MIGRATE.
    #[arg(long, default_value_t = 100)]
    pub batch_keys: usize,
    /// Bytes per MIGRATE (by MEMORY USAGE); a key this big or bigger goes alone.
    #[arg(long, default_value = "4mb")]
    pub batch_bytes: String,
    /// Keys at or over this size are listed in the plan and moved last.
    #[arg(long, default_value = "64mb")]
    pub big_key: String,
    /// MIGRATE's timeout, milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub migrate_timeout_ms: u64,
    /// Percent of the time the move works; it rests the rest so that clients keep the nodes
    /// (100: full speed, for a quiet cluster). Measured in benches/reshard.sh: at 35 a
    /// 50-client load kept 0.73-0.79 of its throughput, at 50 0.58-0.65.
    #[arg(long, default_value_t = 35, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub pace: u8,
}

impl MoveFlags {
    pub fn options(&self) -> Result<Options> {
        let size = |flag: &str, v: &str| {
            parse_memsize(v)
                .map(|n| n as u64)
                .map_err(|e| anyhow!("--{flag} {v}: {e}"))
        };
        let d = Options::default();
        Ok(Options {
            batching: Batching {
                keys: self.batch_keys.max(1),
                bytes: size("batch-bytes", &self.batch_bytes)?.max(1),
                timeout_ms: if self.migrate_timeout_ms == 0 {
                    d.batching.timeout_ms
                } else {
                    self.migrate_timeout_ms
                },
                ..d.batching
            },
            big_key_bytes: size("big-key", &self.big_key)?.max(1),
            pace: f64::from(self.pace) / 100.0,
        })
    }
}

#[derive(Args)]
pub struct ReshardArgs {
    #[command(flatten)]
    pub target: Target,
    /// How many slots to move.
    #[arg(long)]
    pub slots: Option<usize>,
    /// The master that gives them (host:port or node id).
    #[arg(long)]
    pub from: Option<String>,
    /// The master that takes them.
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub flags: MoveFlags,
}

#[derive(Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub target: Target,
    /// A master's weight (default 1; 0 empties it), as NODE=W; repeatable.
    #[arg(long = "weight")]
    pub weight: Vec<String>,
    /// Move nothing when every master is within this many percent of its share.
    #[arg(long, default_value_t = 2.0)]
    pub threshold: f64,
    #[command(flatten)]
    pub flags: MoveFlags,
}

impl RebalanceArgs {
    pub fn weights(&self) -> Result<Vec<(String, f64)>> {
        self.weight
            .iter()
            .map(|w| {
                let (node, v) = w
                    .rsplit_once('=')
                    .ok_or_else(|| anyhow!("--weight {w}: give NODE=W"))?;
                let v: f64 = v
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| anyhow!("--weight {w}: W must be a number ≥ 0"))?;
                Ok((node.to_string(), v))
            })
            .collect()
    }
}

#[derive(Args)]
pub struct RemoveShardArgs {
    #[command(flatten)]
    pub target: Target,
    /// The master to remove with its replicas (host:port or node id); its slots go to the rest.
    pub master: String,
    #[command(flatten)]
    pub flags: MoveFlags,
}

#[derive(Args)]
pub struct AddShardArgs {
    #[command(flatten)]
    pub target: Target,
    /// The new master: an empty node (cluster mode: cluster-enabled, in no cluster; sentinel
    /// and static modes: with hive-module loaded).
    pub master: String,
    /// A replica for it (repeatable), empty as well.
    #[arg(long = "replica")]
    pub replicas: Vec<String>,
    /// Sentinel mode: the new group's master name (Sentinel is told to monitor it).
    #[arg(long)]
    pub name: Option<String>,
    /// Check the new nodes and print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}
