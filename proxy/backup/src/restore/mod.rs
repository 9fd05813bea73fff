//! `hive restore ID`: onto a running deployment of any shape. The backup's files are fetched
//! and checked first (nothing is written to a target from a damaged backup); then each
//! shard's snapshot is loaded into a private temporary redis-server and every key is copied,
//! with its TTL, to its owner in the target through the backplane's router (so MOVED/ASK,
//! failovers, credentials and TLS are handled as for a proxied request, without a proxy hop);
//! then the target is read back from its masters and compared with the snapshot.

pub mod compare;
pub mod copy;
pub mod target;
pub mod temp;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use hive_upstream::watch::collect;
use hive_upstream::Backplane;
use serde::Serialize;

use crate::backup::{self, Options as BackupOptions};
use crate::catalog::manifest::Manifest;
use crate::catalog::verify;
use crate::error::{BackupError, Result};
use crate::progress::{Progress, Unit};
use crate::store::Store;

use target::Target;
use temp::{Source, TempServer};

/// `--verify`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verify {
    /// Full up to a million keys, else a sample.
    Auto,
    Full,
    /// About this many keys, chosen at random.
    Sample(u64),
    None,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub force: bool,
    /// The target holds an interrupted restore of this backup: skip the empty check.
    pub resume: bool,
    pub verify: Verify,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardReport {
    pub name: String,
    /// Keys in the manifest, loaded into the temporary server, and dropped at load because
    /// their TTL had passed.
    pub manifest_keys: u64,
    pub loaded: u64,
    pub expired_at_load: u64,
    pub restored: u64,
    pub expired_during_copy: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub other_db_keys: u64,
    pub checked: u64,
    pub mismatches: u64,
    pub mismatch_samples: Vec<String>,
    /// Whether this shard's counts add up and nothing differs.
    pub ok: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub id: String,
    pub source_mode: String,
    pub target_mode: String,
    pub safety_backup: Option<String>,
    pub verify: String,
    pub shards: Vec<ShardReport>,
    pub keys: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub keys_per_sec: f64,
    pub mb_per_sec: f64,
    pub interrupted: bool,
    pub ok: bool,
}

/// Keys on the target's masters (db 0).
async fn target_keys(plane: &Backplane) -> Result<u64> {
    let facts = collect::collect(plane).await;
    let mut n = 0;
    for (i, s) in facts.shards.iter().enumerate() {
        backup::master_up(&facts, i)?;
        n += facts.node(&s.master).map_or(0, |f| f.keys);
    }
    Ok(n)
}

pub async fn run(
    store: &Store,
    id: &str,
    target: &Arc<Backplane>,
    opts: &Options,
    progress: &Progress,
    stop: Arc<AtomicBool>,
) -> Result<Report> {
    let started = Instant::now();
    let m: Manifest = store.manifest(id).await?;
    if !m.is_complete() {
        return Err(BackupError::backup(
            id,
            format!("is {}, not complete: nothing restored", m.state),
        ));
    }
    let work = tempfile::Builder::new()
        .prefix("hive-restore-")
        .tempdir()
        .map_err(|e| BackupError::local(std::env::temp_dir(), e))?;
    progress.say(&format!(
        "fetching and checking {} ({} shards)",
        m.id,
        m.shards.len()
    ));
    let checked = verify::fetch_and_check(store, &m, work.path(), progress).await?;
    if !checked.ok {
        let bad: Vec<String> = checked
            .files
            .iter()
            .filter(|f| !f.ok)
            .map(|f| format!("{}: {}", f.file, f.check))
            .collect();
        return Err(BackupError::Refused(format!(
            "backup {id} failed its checks, nothing was restored: {}",
            bad.join("; ")
        )));
    }
    let mut report = Report {
        id: m.id.clone(),
        source_mode: m.mode.clone(),
        target_mode: target.config.mode.as_str().into(),
        ..Report::default()
    };
    let existing = target_keys(target).await?;
    if existing > 0 && !opts.resume {
        if !opts.force {
            return Err(BackupError::Refused(format!(
                "the target holds {existing} keys; restore refuses a non-empty target without --force (which first takes a safety backup of it)"
            )));
        }
        progress.say(&format!(
            "the target holds {existing} keys: taking a safety backup first"
        ));
        let safety = backup::run(
            target,
            store,
            &BackupOptions {
                tag: Some(format!("before-restore-{id}")),
                compress: m.compressed,
                ..BackupOptions::default()
            },
            progress,
        )
        .await?;
        progress.say(&format!(
            "safety backup {} ({} keys) at {}",
            safety.id,
            safety.keys(),
            store.location
        ));
        report.safety_backup = Some(safety.id);
    }
    let total: u64 = m.shards.iter().map(|s| s.dbsize).sum();
    let sample = match opts.verify {
        Verify::Full => 1.0,
        Verify::Auto if total <= 1_000_000 => 1.0,
        Verify::Auto => 10_000.0 / total as f64,
        Verify::Sample(n) => (n as f64 / total.max(1) as f64).min(1.0),
        Verify::None => 0.0,
    };
    report.verify = match opts.verify {
        Verify::None => "none".into(),
        _ if sample >= 1.0 => "full".into(),
        _ => format!("sample of about {:.0} keys", sample * total as f64),
    };
    let to = Target::new(target.clone());
    let results = futures_util::future::join_all(m.shards.iter().enumerate().map(|(i, s)| {
        let work = work.path().to_path_buf();
        let stop = stop.clone();
        let to = &to;
        async move {
            let source = match &s.file {
                Some(f) => work.join(verify::raw_name(f)),
                None => work.join(verify::aof_dir_name(i)),
            };
            let src = if s.file.is_some() {
                Source::Rdb(&source)
            } else {
                Source::Aof(&source)
            };
            let temp = TempServer::start(src, &work).await?;
            let mut r = ShardReport {
                name: s.name.clone(),
                manifest_keys: s.dbsize,
                loaded: temp.loaded,
                expired_at_load: temp.expired_at_load,
                other_db_keys: temp.other_db_keys,
                ..ShardReport::default()
            };
            let mut from = temp.connect().await?;
            let bar = progress.bar(
                &format!("restore {}", s.name),
                Some(temp.loaded),
                Unit::Keys,
            );
            let c = copy::copy(&mut from, to, &bar, &stop).await?;
            bar.finish(if c.interrupted {
                "interrupted"
            } else {
                "copied"
            });
            r.restored = c.restored;
            r.expired_during_copy = c.expired;
            r.errors = c.errors;
            r.error_samples = c.error_samples;
            let mut interrupted = c.interrupted;
            if !interrupted && sample > 0.0 {
                let bar =
                    progress.bar(&format!("verify {}", s.name), Some(temp.loaded), Unit::Keys);
                let v = compare::compare(&mut from, to, sample, &bar, &stop).await?;
                bar.finish(if v.interrupted {
                    "interrupted"
                } else {
                    "verified"
                });
                r.checked = v.checked;
                r.mismatches = v.mismatches;
                r.mismatch_samples = v.samples;
                interrupted = v.interrupted;
            }
            let counts = r.loaded + r.expired_at_load == r.manifest_keys
                && r.restored + r.expired_during_copy + r.errors == r.loaded;
            r.ok = counts
                && r.errors == 0
                && r.mismatches == 0
                && r.other_db_keys == 0
                && !interrupted;
            Ok::<_, BackupError>((r, c.bytes, interrupted))
        }
    }))
    .await;
    for r in results {
        let (shard, bytes, interrupted) = r?;
        report.keys += shard.restored;
        report.bytes += bytes;
        report.interrupted |= interrupted;
        report.shards.push(shard);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.keys_per_sec = report.keys as f64 / report.seconds.max(1e-3);
    report.mb_per_sec = report.bytes as f64 / 1e6 / report.seconds.max(1e-3);
    report.ok = !report.interrupted && report.shards.iter().all(|s| s.ok);
    Ok(report)
}
