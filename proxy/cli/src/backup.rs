//! `hive backup`, `hive backups` and `hive restore`: the operator side of backups, over the
//! `hive-backup` crate. Progress goes to stderr (bars on a terminal); results to stdout, as a
//! table or `--json`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets, Table};
use hive_backup::backup::{self, Options};
use hive_backup::manifest::Kind;
use hive_backup::progress::Progress;
use hive_backup::restore::{self, Verify};
use hive_backup::retention::Policy;
use hive_backup::snapshot::Method;
use hive_backup::{list, verify, Store};

use crate::target::Target;

#[derive(Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Rdb,
    Aof,
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// hive-module where the node has it and its backup directory is reachable, else network.
    Auto,
    Module,
    Network,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: Target,
    /// Where backups go: a directory, or s3://bucket/prefix (AWS_* environment for S3).
    #[arg(long)]
    pub dest: String,
    /// What to capture: the RDB, the multi-part AOF directory (needs hive-module), or both.
    #[arg(long = "type", value_enum, default_value = "rdb")]
    pub kind: TypeArg,
    /// Pause writes on every master while the snapshots start, so every shard is cut at one moment.
    #[arg(long)]
    pub consistent: bool,
    /// zstd-compress the files.
    #[arg(long)]
    pub compress: bool,
    #[arg(long)]
    pub tag: Option<String>,
    /// Snapshot a replica of each shard instead of its master.
    #[arg(long)]
    pub replica: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub method: MethodArg,
    /// Retention after a successful backup: keep the newest backup of each of the last N hours.
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: usize,
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub cmd: Option<BackupsCmd>,
    /// The destination to list (as given to `hive backup --dest`).
    #[arg(long, global = true)]
    pub dest: Option<String>,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BackupsCmd {
    /// Re-compute every checksum and run redis-check-rdb / redis-check-aof on each file.
    Verify { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum VerifyArg {
    /// Every key up to a million, else a sample of 10,000.
    Auto,
    Full,
    Sample,
    None,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup's id (see `hive backups`).
    pub id: String,
    /// Where the backup is (as given to `hive backup --dest`).
    #[arg(long)]
    pub from: String,
    /// The deployment to restore onto (any mode and number of shards).
    #[command(flatten)]
    pub target: Target,
    /// Restore onto a non-empty target, after a safety backup of it to the same place.
    #[arg(long)]
    pub force: bool,
    /// The target holds an interrupted restore of this same backup: finish it.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub verify: VerifyArg,
    /// Keys to compare with `--verify sample`.
    #[arg(long, default_value_t = 10_000)]
    pub sample: u64,
    #[arg(long)]
    pub json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The clock retention and ids use: `HIVE_BACKUP_NOW_MS` when set (tests simulate a week of
/// hourly backups with it), else the system's.
fn injected_now() -> Result<Option<u64>> {
    match std::env::var("HIVE_BACKUP_NOW_MS") {
        Ok(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("HIVE_BACKUP_NOW_MS: not a number of milliseconds: {v:?}")
        })?)),
        Err(_) => Ok(None),
    }
}

pub fn run_backup(a: BackupArgs) -> Result<()> {
    let opts = Options {
        tag: a.tag.clone(),
        kind: match a.kind {
            TypeArg::Rdb => Kind::Rdb,
            TypeArg::Aof => Kind::Aof,
            TypeArg::Both => Kind::Both,
        },
        consistent: a.consistent,
        compress: a.compress,
        replica: a.replica,
        method: match a.method {
            MethodArg::Auto => Method::Auto,
            MethodArg::Module => Method::Module,
            MethodArg::Network => Method::Network,
        },
        retention: Policy {
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
        },
        now_ms: injected_now()?,
    };
    let progress = Progress::new(false);
    let m = runtime()?.block_on(async {
        let store = Store::open(&a.dest)?;
        let plane = a.target.connect().await?;
        anyhow::Ok(backup::run(&plane, &store, &opts, &progress).await?)
    })?;
    if a.json {
        println!("{}", String::from_utf8_lossy(&m.to_json()).trim_end());
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "shard", "node", "role", "method", "slots", "keys", "offset", "size", "sha256",
    ]);
    for s in &m.shards {
        t.add_row([
            s.name.clone(),
            s.node.clone(),
            s.role.clone(),
            s.method.clone(),
            s.slot_count.to_string(),
            s.dbsize.to_string(),
            s.repl_offset.to_string(),
            s.size.to_string(),
            s.sha256.chars().take(12).collect(),
        ]);
    }
    println!(
        "backup {} ({}, {} keys, {} bytes) at {}",
        m.id,
        m.mode,
        m.keys(),
        m.bytes(),
        a.dest
    );
    if let Some(p) = m.pause_ms {
        println!("writes paused for {p:.1} ms (--consistent)");
    }
    println!("{t}");
    Ok(())
}

pub fn run_backups(a: BackupsArgs) -> Result<()> {
    let Some(dest) = a.dest.clone() else {
        bail!("--dest: which destination to read (a directory or s3://bucket/prefix)");
    };
    let rt = runtime()?;
    match a.cmd {
        None => {
            let rows =
                rt.block_on(async { anyhow::Ok(list::rows(&Store::open(&dest)?).await?) })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            let mut t = Table::new();
            t.load_preset(presets::UTF8_FULL_CONDENSED);
            t.set_header([
                "id", "time", "tag", "mode", "shards", "keys", "size", "state",
            ]);
            for r in &rows {
                t.add_row([
                    r.id.clone(),
                    r.created.clone(),
                    r.tag.clone().unwrap_or_default(),
                    r.mode.clone(),
                    r.shards.to_string(),
                    r.keys.to_string(),
                    r.bytes.to_string(),
                    r.state.clone(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        Some(BackupsCmd::Verify { id }) => {
            let progress = Progress::new(a.json);
            let report = rt.block_on(async {
                anyhow::Ok(verify::verify(&Store::open(&dest)?, &id, &progress).await?)
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for f in &report.files {
                    println!(
                        "{} {} {}: sha256 {}, {}",
                        if f.ok { "ok  " } else { "FAIL" },
                        f.shard,
                        f.file,
                        if f.sha256_ok { "ok" } else { "MISMATCH" },
                        f.check
                    );
                }
                println!(
                    "backup {}: {}",
                    report.id,
                    if report.ok { "ok" } else { "DAMAGED" }
                );
            }
            if !report.ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

pub fn run_restore(a: RestoreArgs) -> Result<()> {
    let opts = restore::Options {
        force: a.force,
        resume: a.resume,
        verify: match a.verify {
            VerifyArg::Auto => Verify::Auto,
            VerifyArg::Full => Verify::Full,
            VerifyArg::Sample => Verify::Sample(a.sample),
            VerifyArg::None => Verify::None,
        },
    };
    let progress = Progress::new(false);
    let stop = Arc::new(AtomicBool::new(false));
    let report = runtime()?.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                s.store(true, Ordering::SeqCst);
            }
        });
        let store = Store::open(&a.from)?;
        let plane = a.target.connect().await?;
        anyhow::Ok(restore::run(&store, &a.id, &plane, &opts, &progress, stop.clone()).await?)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_restore(&report);
    }
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}

fn print_restore(r: &restore::Report) {
    if let Some(s) = &r.safety_backup {
        println!("safety backup of the target: {s}");
    }
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "shard", "manifest", "loaded", "expired", "restored", "errors", "checked", "differ", "ok",
    ]);
    for s in &r.shards {
        t.add_row([
            s.name.clone(),
            s.manifest_keys.to_string(),
            s.loaded.to_string(),
            (s.expired_at_load + s.expired_during_copy).to_string(),
            s.restored.to_string(),
            s.errors.to_string(),
            s.checked.to_string(),
            s.mismatches.to_string(),
            if s.ok { "yes" } else { "NO" }.into(),
        ]);
    }
    println!("{t}");
    for s in &r.shards {
        for e in s.error_samples.iter().chain(&s.mismatch_samples) {
            println!("  {}: {e}", s.name);
        }
        if s.other_db_keys > 0 {
            println!(
                "  {}: {} keys in databases other than 0 were not restored (Hive serves db 0)",
                s.name, s.other_db_keys
            );
        }
    }
    println!(
        "restore of {} ({} -> {}): {} keys in {:.1} s ({:.0} keys/s, {:.1} MB/s), verify {}: {}",
        r.id,
        r.source_mode,
        r.target_mode,
        r.keys,
        r.seconds,
        r.keys_per_sec,
        r.mb_per_sec,
        r.verify,
        if r.ok {
            "ok"
        } else if r.interrupted {
            "INTERRUPTED"
        } else {
            "DIFFERENCES"
        }
    );
    if r.interrupted {
        println!(
            "interrupted: the target holds the keys restored so far, each whole with its TTL; run the same command with --resume to finish (RESTORE ... REPLACE)"
        );
    }
}
