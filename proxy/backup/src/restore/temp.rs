//! A private redis-server holding one shard's snapshot while it is copied: loopback only, a
//! random password, no persistence, active expiry off (keys are read as the snapshot holds
//! them; a key whose TTL ran out is counted, not copied). Killed on Drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hive_common::info;
use hive_local::process::{free_port_pair, RedisProcess};
use hive_upstream::conn::control::ControlConn;
use hive_upstream::Auth;

use crate::error::{BackupError, Result};
use crate::pipe::call;

pub struct TempServer {
    pub addr: String,
    auth: Auth,
    /// Keys loaded into db 0, and keys the load dropped because their TTL had passed.
    pub loaded: u64,
    pub expired_at_load: u64,
    /// Keys in other databases (Hive serves db 0; they are reported, not restored).
    pub other_db_keys: u64,
    process: RedisProcess,
}

pub enum Source<'a> {
    Rdb(&'a Path),
    /// An AOF directory (its manifest names the files).
    Aof(&'a Path),
}

impl TempServer {
    pub async fn start(source: Source<'_>, work: &Path) -> Result<TempServer> {
        let password: String = {
            use rand::Rng;
            let mut r = rand::thread_rng();
            (0..32)
                .map(|_| format!("{:x}", r.gen::<u8>() % 16))
                .collect()
        };
        let (dir, args): (PathBuf, Vec<String>) = match source {
            Source::Rdb(file) => (
                file.parent().unwrap_or(work).to_path_buf(),
                vec!["--dbfilename".into(), file_name(file)],
            ),
            Source::Aof(aof_dir) => (
                aof_dir.parent().unwrap_or(work).to_path_buf(),
                vec![
                    "--appendonly".into(),
                    "yes".into(),
                    "--appenddirname".into(),
                    file_name(aof_dir),
                    "--dbfilename".into(),
                    "none.rdb".into(),
                ],
            ),
        };
        let mut args = args;
        // AOF sets of nodes with hive-module hold its replicated HIVE.HEARTBEAT commands:
        // loading them needs the module (which ignores them on replay).
        if let Some(so) = hive_local::module_path() {
            args.extend([
                "--loadmodule".to_string(),
                so.display().to_string(),
                "heartbeat-ms".into(),
                "0".into(),
            ]);
        }
        args.extend(
            [
                "--requirepass",
                &password,
                "--enable-debug-command",
                "local",
                "--maxmemory",
                "0",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let dir2 = dir.clone();
        let process =
            tokio::task::spawn_blocking(move || -> std::result::Result<RedisProcess, String> {
                let port = free_port_pair().map_err(|e| e.to_string())?;
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                RedisProcess::start_own_group(&dir2, port, &a).map_err(|e| {
                    let log = std::fs::read_to_string(dir2.join(format!("redis-{port}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(2).collect();
                    format!(
                        "{e:#}: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    )
                })
            })
            .await
            .map_err(|e| BackupError::local(&dir, e))?
            .map_err(|e| BackupError::local(&dir, format!("temporary redis-server: {e}")))?;
        let auth = Auth {
            username: None,
            password,
        };
        let mut t = TempServer {
            addr: process.addr.clone(),
            auth,
            loaded: 0,
            expired_at_load: 0,
            other_db_keys: 0,
            process,
        };
        let mut c = t.connect().await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let v = c.call(&["INFO", "persistence"]).await;
            if let Ok(v) = v {
                if info::field(v.as_str().unwrap_or_default(), "loading") == Some("0") {
                    break;
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(BackupError::node(&t.addr, "still loading after an hour"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        call(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await?;
        let keyspace = call(&mut c, &["INFO", "keyspace"]).await?;
        let (db0, others) = keyspace_counts(keyspace.as_str().unwrap_or_default());
        t.loaded = db0;
        t.other_db_keys = others;
        let log = dir.join(format!("redis-{}.log", t.process.port));
        t.expired_at_load = expired_at_load(&std::fs::read_to_string(log).unwrap_or_default());
        Ok(t)
    }

    pub async fn connect(&self) -> Result<ControlConn> {
        ControlConn::connect_auth(&self.addr, Duration::from_secs(30), Some(&self.auth))
            .await
            .map_err(|e| BackupError::node(&self.addr, e))
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `INFO keyspace`: db 0's keys, and the keys of every other db.
pub fn keyspace_counts(text: &str) -> (u64, u64) {
    let (mut db0, mut others) = (0, 0);
    for line in text.lines() {
        let Some((db, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let keys = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("keys="))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        match db {
            "db0" => db0 = keys,
            d if d.starts_with("db") => others += keys,
            _ => {}
        }
    }
    (db0, others)
}

/// The `keys expired` count of Redis's "Done loading RDB" log line (0 when absent).
pub fn expired_at_load(log: &str) -> u64 {
    log.lines()
        .rev()
        .filter_map(|l| l.split("keys expired: ").nth(1))
        .filter_map(|rest| {
            rest.trim_end_matches('.')
                .split([',', '.'])
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_keyspace_counts_db0_and_the_rest() {
        let t =
            "# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\ndb2:keys=5,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace_counts(t), (12, 5));
        assert_eq!(keyspace_counts("# Keyspace\r\n"), (0, 0));
    }

    #[test]
    fn temp_reads_expired_keys_from_the_load_log() {
        let log =
            "1:M 03 Dec 2026 07:18:00.000 * Done loading RDB, keys loaded: 99, keys expired: 7.\n";
        assert_eq!(expired_at_load(log), 7);
        let log72 = "* Done loading RDB, keys loaded: 9, keys expired: 2, empty keys skipped: 0.\n";
        assert_eq!(expired_at_load(log72), 2);
        assert_eq!(expired_at_load("nothing"), 0);
    }
}
