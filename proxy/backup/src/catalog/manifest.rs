//! `manifest.json`: one per backup, for the whole deployment. Written as `running` before the
//! first file and rewritten `complete` (or `failed`, with the reason) after the last, so a
//! listing always tells a finished backup from one that broke off.

use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";

/// What the backup captured: `rdb`, `aof`, or `both`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Rdb,
    Aof,
    Both,
}

impl Kind {
    pub fn rdb(self) -> bool {
        matches!(self, Kind::Rdb | Kind::Both)
    }
    pub fn aof(self) -> bool {
        matches!(self, Kind::Aof | Kind::Both)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub tag: Option<String>,
    /// Unix milliseconds, and the same instant as RFC 3339 (UTC).
    pub created_ms: u64,
    pub created: String,
    pub finished_ms: Option<u64>,
    /// The backend mode of the deployment: `cluster`, `sentinel` or `static`.
    pub mode: String,
    /// `running`, `complete` or `failed`.
    pub state: String,
    pub error: Option<String>,
    pub kind: Kind,
    pub compressed: bool,
    /// Whether writes were paused on every master while the snapshots started, and for how
    /// long (milliseconds).
    pub consistent: bool,
    pub pause_ms: Option<f64>,
    pub hive_version: String,
    pub shards: Vec<ShardBackup>,
}

/// One shard's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardBackup {
    pub name: String,
    /// The node the snapshot came from, and its role then (`master` or `replica`).
    pub node: String,
    pub role: String,
    /// The slots the shard held, as `0-5460` ranges, and how many.
    pub slots: Vec<String>,
    pub slot_count: usize,
    /// The node's replication offset at the snapshot.
    pub repl_offset: i64,
    /// Keys in db 0 at the snapshot (from the RDB itself), and how many had a TTL.
    pub dbsize: u64,
    pub expires: u64,
    /// `module` (HIVE.BACKUP on the node) or `network` (the replication protocol).
    pub method: String,
    /// Why the method was chosen (a fallback names its reason).
    pub method_reason: String,
    /// The RDB as stored (relative to the backup), its stored size and sha256, and the size
    /// of the RDB itself (differs when compressed).
    pub file: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub rdb_size: u64,
    /// The Redis 7 multi-part AOF files, manifest first (`--type aof|both`).
    pub aof: Vec<StoredFile>,
    pub redis_version: String,
    pub module_version: Option<String>,
    /// The id HIVE.BACKUP gave the node-local copy (module method).
    pub node_backup_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The file's name in Redis's AOF directory.
    pub name: String,
    /// Where it is stored, relative to the backup.
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub raw_size: u64,
}

impl Manifest {
    pub fn keys(&self) -> u64 {
        self.shards.iter().map(|s| s.dbsize).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.size + s.aof.iter().map(|f| f.size).sum::<u64>())
            .sum()
    }

    pub fn is_complete(&self) -> bool {
        self.state == "complete"
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// A backup id that sorts by time and reads as one: `20261203-071800-123` (UTC).
pub fn new_id(unix_ms: u64) -> String {
    match chrono::DateTime::from_timestamp_millis(unix_ms as i64) {
        Some(t) => t.format("%Y%m%d-%H%M%S-%3f").to_string(),
        None => format!("{unix_ms}"),
    }
}

pub fn rfc3339(unix_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Backup ids are ours only: a name from a listing or the command line is never a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_ids_sort_by_time_and_read_as_dates() {
        assert_eq!(new_id(1_796_282_280_123), "20261203-071800-123");
        assert!(new_id(1_000) < new_id(2_000));
        assert_eq!(rfc3339(1_796_282_280_123), "2026-12-03T07:18:00.123Z");
    }

    #[test]
    fn manifest_ids_are_never_paths() {
        assert!(valid_id("20261203-071800-123"));
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let m = Manifest {
            id: "x".into(),
            kind: Kind::Both,
            shards: vec![ShardBackup {
                dbsize: 3,
                size: 10,
                ..Default::default()
            }],
            ..Default::default()
        };
        let back: Manifest = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.keys(), 3);
        assert!(serde_json::to_string(&m)
            .unwrap()
            .contains("\"kind\":\"both\""));
    }
}
