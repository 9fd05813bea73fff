//! Backups on disk: `DIR/<id>/dump.rdb` plus `metadata.json`, the sha256, the operator's hook,
//! history and pruning. Plain std + serde: unit-tested without Redis.

pub mod aof;
pub mod cmd;
pub mod job;
pub mod path;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const METADATA: &str = "metadata.json";
pub const RDB: &str = "dump.rdb";

/// `metadata.json`. Field names are part of the module's documented contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub id: String,
    pub tag: Option<String>,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub node_id: Option<String>,
    pub role: String,
    pub slots: Vec<String>,
    pub repl_offset: i64,
    pub dbsize: i64,
    pub file_size: Option<u64>,
    pub sha256: Option<String>,
    pub redis_version: String,
    pub module_version: String,
    /// `none`, `ok`, or `failed: <reason>`.
    pub hook: String,
    /// With `START … AOF`: the AOF files under `aof/`, the manifest first.
    #[serde(default)]
    pub aof: Vec<String>,
    /// `module` (this node made the copy) or `network` (`RECORD`: streamed by `hive backup`,
    /// no file here).
    #[serde(default)]
    pub method: Option<String>,
}

impl Metadata {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{METADATA}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        // Rename so readers never see half a file.
        fs::rename(tmp, dir.join(METADATA))
    }

    pub fn read(dir: &Path) -> Option<Metadata> {
        serde_json::from_slice(&fs::read(dir.join(METADATA)).ok()?).ok()
    }
}

/// A backup id that sorts by time: `bk-<unix ms>`.
pub fn new_id(now_ms: u64) -> String {
    format!("bk-{now_ms:013}")
}

/// Creates the directory of a new backup under `root` and returns its id: `new_id(now_ms)`,
/// or the next free millisecond when another node sharing the directory (one NAS mount for
/// every node) took that one. `create_dir` is atomic, so two nodes never share a backup.
pub fn claim(root: &Path, now_ms: u64) -> std::io::Result<(String, PathBuf)> {
    fs::create_dir_all(root)?;
    let mut t = now_ms;
    loop {
        let id = new_id(t);
        let dir = root.join(&id);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && t < now_ms + 10_000 => {
                t += 1
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Puts the finished RDB in the backup directory: a hard link when on the same filesystem,
/// otherwise a copy (Redis replaces `dump.rdb` on the next save, so the link stays valid).
pub fn capture(rdb: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let dest = dir.join(RDB);
    let _ = fs::remove_file(&dest);
    if fs::hard_link(rdb, &dest).is_err() {
        fs::copy(rdb, &dest)?;
    }
    Ok(dest)
}

/// Completes a backup after a successful BGSAVE: capture, checksum, metadata, hook, prune.
/// Runs on a background thread, never on Redis's main thread.
pub fn finish(
    mut meta: Metadata,
    rdb: &Path,
    aof: Option<&crate::backup::aof::Staged>,
    dir: &Path,
    hook: &str,
    keep: usize,
    now_ms: u64,
) -> Metadata {
    let aof_files = match aof {
        Some(staged) => crate::backup::aof::copy_out(staged, &dir.join("aof")).map(Some),
        None => Ok(None),
    };
    let result = aof_files.and_then(|files| {
        meta.aof = files.unwrap_or_default();
        capture(rdb, dir)
    });
    let result = result.and_then(|dest| {
        let size = fs::metadata(&dest)?.len();
        Ok((dest, size, sha256_file(&dir.join(RDB))?))
    });
    match result {
        Ok((_, size, sha)) => {
            meta.status = "done".into();
            meta.file_size = Some(size);
            meta.sha256 = Some(sha);
        }
        Err(e) => {
            meta.status = "failed".into();
            meta.error = Some(format!("cannot capture the RDB or AOF: {e}"));
        }
    }
    meta.finished_ms = Some(now_ms);
    meta.hook = "none".into();
    let _ = meta.write(dir);
    if meta.status == "done" && !hook.trim().is_empty() {
        meta.hook = run_hook(hook, dir, &meta);
        let _ = meta.write(dir);
    }
    if keep > 0 {
        if let Some(root) = dir.parent() {
            let _ = prune(root, keep);
        }
    }
    meta
}

/// Runs the operator's hook through `sh -c` with the backup in the environment.
pub fn run_hook(hook: &str, dir: &Path, meta: &Metadata) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(hook)
        .env("HIVE_BACKUP_ID", &meta.id)
        .env("HIVE_BACKUP_DIR", dir)
        .env("HIVE_BACKUP_RDB", dir.join(RDB))
        .env("HIVE_BACKUP_METADATA", dir.join(METADATA))
        .env("HIVE_BACKUP_SHA256", meta.sha256.as_deref().unwrap_or(""))
        .env("HIVE_BACKUP_TAG", meta.tag.as_deref().unwrap_or(""))
        .output();
    match out {
        Ok(o) if o.status.success() => "ok".into(),
        Ok(o) => format!(
            "failed: {} ({})",
            o.status,
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .chars()
                .take(200)
                .collect::<String>()
        ),
        Err(e) => format!("failed: cannot run the hook: {e}"),
    }
}

/// Every backup under `root`, oldest first.
pub fn list(root: &Path) -> Vec<Metadata> {
    let mut out: Vec<Metadata> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Metadata::read(&e.path()))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Removes the oldest finished backups so that at most `keep` remain; returns how many went.
/// A running backup is never removed.
pub fn prune(root: &Path, keep: usize) -> std::io::Result<usize> {
    let finished: Vec<Metadata> = list(root)
        .into_iter()
        .filter(|m| m.status != "running")
        .collect();
    let excess = finished.len().saturating_sub(keep);
    for m in &finished[..excess] {
        fs::remove_dir_all(root.join(&m.id))?;
    }
    Ok(excess)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("hive-module-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn finish_captures_hashes_and_runs_hook() {
        let root = tmp("finish");
        let rdb = root.join("source.rdb");
        fs::write(&rdb, b"REDIS0010 fake rdb body").unwrap();
        let dir = root.join(new_id(42));
        let meta = Metadata {
            id: new_id(42),
            status: "running".into(),
            ..Default::default()
        };
        let marker = root.join("hook-ran");
        let hook = format!(
            "echo \"$HIVE_BACKUP_RDB $HIVE_BACKUP_SHA256\" > {}",
            marker.display()
        );
        let done = finish(meta, &rdb, None, &dir, &hook, 0, 99);
        assert_eq!(done.status, "done");
        assert_eq!(done.file_size, Some(23));
        let sha = done.sha256.clone().unwrap();
        assert_eq!(sha, sha256_file(&rdb).unwrap());
        assert_eq!(done.hook, "ok");
        let seen = fs::read_to_string(&marker).unwrap();
        assert_eq!(seen.trim(), format!("{} {sha}", dir.join(RDB).display()));
        assert_eq!(Metadata::read(&dir).unwrap(), done);
    }

    #[test]
    fn failing_hook_is_reported() {
        let root = tmp("hookfail");
        let rdb = root.join("s.rdb");
        fs::write(&rdb, b"x").unwrap();
        let m = Metadata {
            id: new_id(1),
            ..Default::default()
        };
        let done = finish(
            m,
            &rdb,
            None,
            &root.join(new_id(1)),
            "echo nope >&2; exit 3",
            0,
            2,
        );
        assert_eq!(done.status, "done");
        assert!(
            done.hook.starts_with("failed: exit status: 3 (nope)"),
            "{}",
            done.hook
        );
    }

    #[test]
    fn list_and_prune_keep_the_newest() {
        let root = tmp("prune");
        for (i, status) in [(1, "done"), (2, "failed"), (3, "done"), (4, "running")] {
            Metadata {
                id: new_id(i),
                status: status.into(),
                ..Default::default()
            }
            .write(&root.join(new_id(i)))
            .unwrap();
        }
        assert_eq!(list(&root).len(), 4);
        assert_eq!(prune(&root, 1).unwrap(), 2);
        let left: Vec<String> = list(&root).into_iter().map(|m| m.id).collect();
        assert_eq!(left, vec![new_id(3), new_id(4)]);
    }

    #[test]
    fn claim_takes_the_next_millisecond_when_taken() {
        let root = tmp("claim");
        let (a, da) = claim(&root, 7).unwrap();
        let (b, db) = claim(&root, 7).unwrap();
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("bk-0000000000007", "bk-0000000000008")
        );
        assert!(da.is_dir() && db.is_dir());
    }

    #[test]
    fn ids_sort_by_time() {
        assert!(new_id(999) < new_id(1000));
        assert_eq!(new_id(5), "bk-0000000000005");
    }
}
