//! `hive backups verify ID`: downloads every file of a backup, re-computes its sha256 against
//! the manifest, and runs Redis's own checkers on it (`redis-check-rdb` on each RDB,
//! `redis-check-aof` on each AOF directory's manifest).

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::catalog::manifest::Manifest;
use crate::error::{BackupError, Result};
use crate::progress::{Progress, Unit};
use crate::store::Store;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileCheck {
    pub shard: String,
    pub file: String,
    pub sha256_ok: bool,
    /// `redis-check-rdb` / `redis-check-aof`: `ok`, or what it said.
    pub check: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub id: String,
    pub ok: bool,
    pub files: Vec<FileCheck>,
}

pub fn check_rdb_bin() -> String {
    std::env::var("HIVE_REDIS_CHECK_RDB").unwrap_or_else(|_| "redis-check-rdb".into())
}

pub fn check_aof_bin() -> String {
    std::env::var("HIVE_REDIS_CHECK_AOF").unwrap_or_else(|_| "redis-check-aof".into())
}

/// Runs a checker; `Ok("ok")` or the last lines it printed.
fn run_check(bin: &str, file: &Path) -> Result<String> {
    let out = Command::new(bin).arg(file).output().map_err(|e| {
        BackupError::local(file, format!("cannot run {bin}: {e} (install redis-tools)"))
    })?;
    if out.status.success() {
        return Ok("ok".into());
    }
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Ok(tail[tail.len().saturating_sub(3)..].join(" | "))
}

/// Downloads backup `m` into `dir` (which must be empty and private), checking every file.
/// Files that pass stay there for a restore: `<dir>/<shard file>` decompressed, AOF files
/// under `<dir>/<shard>.aof/`.
pub async fn fetch_and_check(
    store: &Store,
    m: &Manifest,
    dir: &Path,
    progress: &Progress,
) -> Result<Report> {
    let mut files = Vec::new();
    for (i, s) in m.shards.iter().enumerate() {
        let bar = progress.bar(
            &s.name,
            Some(s.size + s.aof.iter().map(|f| f.size).sum::<u64>()),
            Unit::Bytes,
        );
        if let Some(file) = &s.file {
            let local = dir.join(raw_name(file));
            let fetched = store
                .fetch(&m.id, file, &s.sha256, &local, |n| bar.inc(n))
                .await;
            files.push(match fetched {
                Ok(_) => {
                    let check = run_check(&check_rdb_bin(), &local)?;
                    FileCheck {
                        shard: s.name.clone(),
                        file: file.clone(),
                        sha256_ok: true,
                        ok: check == "ok",
                        check,
                    }
                }
                Err(e) => FileCheck {
                    shard: s.name.clone(),
                    file: file.clone(),
                    sha256_ok: false,
                    check: e.to_string(),
                    ok: false,
                },
            });
        }
        if !s.aof.is_empty() {
            let aof_dir = dir.join(aof_dir_name(i));
            std::fs::create_dir_all(&aof_dir).map_err(|e| BackupError::local(&aof_dir, e))?;
            let mut all = true;
            let mut manifest_file = None;
            for f in &s.aof {
                let local = aof_dir.join(&f.name);
                if let Err(e) = store
                    .fetch(&m.id, &f.file, &f.sha256, &local, |n| bar.inc(n))
                    .await
                {
                    all = false;
                    files.push(FileCheck {
                        shard: s.name.clone(),
                        file: f.file.clone(),
                        sha256_ok: false,
                        check: e.to_string(),
                        ok: false,
                    });
                }
                if f.name.ends_with(".manifest") {
                    manifest_file = Some(local);
                }
            }
            if all {
                let check = match &manifest_file {
                    Some(mf) => run_check(&check_aof_bin(), mf)?,
                    None => "no AOF manifest among the files".into(),
                };
                files.push(FileCheck {
                    shard: s.name.clone(),
                    file: format!("{}/", aof_dir_name(i)),
                    sha256_ok: true,
                    ok: check == "ok",
                    check,
                });
            }
        }
        bar.finish("checked");
    }
    Ok(Report {
        id: m.id.clone(),
        ok: !files.is_empty() && files.iter().all(|f| f.ok),
        files,
    })
}

/// Where shard `i`'s AOF files are put locally (a directory Redis can load with
/// `--appenddirname`).
pub fn aof_dir_name(i: usize) -> String {
    format!("shard-{i}.aof")
}

/// The local name of a stored file: without `.zst`, as it is decompressed on download.
pub fn raw_name(stored: &str) -> String {
    stored.strip_suffix(".zst").unwrap_or(stored).to_string()
}

/// `hive backups verify ID`.
pub async fn verify(store: &Store, id: &str, progress: &Progress) -> Result<Report> {
    let m = store.manifest(id).await?;
    if !m.is_complete() {
        return Err(BackupError::backup(
            id,
            format!(
                "is {}, not complete{}",
                m.state,
                m.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| BackupError::local(std::env::temp_dir(), e))?;
    fetch_and_check(store, &m, dir.path(), progress).await
}
