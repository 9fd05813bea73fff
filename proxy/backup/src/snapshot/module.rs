//! A snapshot through hive-module: `HIVE.BACKUP START` makes a node-local copy in the node's
//! backup directory (the NAS mount of a typical deployment, with the node's hook run), and
//! `hive backup` then reads that copy into the destination when the directory is reachable
//! from where it runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hive_common::resp::Value;
use hive_upstream::conn::control::ControlConn;

use crate::error::{BackupError, Result};
use crate::pipe::call;

/// The node's backup directory: `hive.backup-dir`, else `<dir>/hive-backups`.
pub async fn root(conn: &mut ControlConn) -> Result<PathBuf> {
    let configured = config(conn, "hive.backup-dir").await?;
    if !configured.is_empty() {
        return Ok(PathBuf::from(configured));
    }
    Ok(Path::new(&config(conn, "dir").await?).join("hive-backups"))
}

pub async fn config(conn: &mut ControlConn, name: &str) -> Result<String> {
    let v = call(conn, &["CONFIG", "GET", name]).await?;
    Ok(v.as_array()
        .and_then(|a| a.get(1))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Starts the node-local backup; returns once the node has forked, with the backup's id.
pub async fn start(conn: &mut ControlConn, tag: &str, aof: bool) -> Result<String> {
    let mut args = vec!["HIVE.BACKUP", "START", "TAG", tag];
    if aof {
        args.push("AOF");
    }
    let v = call(conn, &args).await?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| BackupError::node(conn.addr(), "HIVE.BACKUP START: no id in the reply"))
}

/// Records on the node a backup that was streamed over the network (`HIVE.BACKUP RECORD`),
/// so the node's newest backup, and the proxy's `hive_backup_last_success_timestamp_seconds`,
/// count it.
pub async fn record(conn: &mut ControlConn, tag: &str) -> Result<String> {
    let v = call(conn, &["HIVE.BACKUP", "RECORD", "TAG", tag]).await?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| BackupError::node(conn.addr(), "HIVE.BACKUP RECORD: no id in the reply"))
}

/// The node-local backup's metadata once it is `done`; an error if it `failed`.
pub async fn wait(conn: &mut ControlConn, id: &str, limit: Duration) -> Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let v = call(conn, &["HIVE.BACKUP", "STATUS", id]).await?;
        match v.field("status").and_then(Value::as_str) {
            Some("done") => return Ok(v),
            Some("failed") => {
                let why = v.field("error").and_then(Value::as_str).unwrap_or("?");
                return Err(BackupError::node(
                    conn.addr(),
                    format!("HIVE.BACKUP {id} failed: {why}"),
                ));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(BackupError::node(
                conn.addr(),
                format!("HIVE.BACKUP {id} still running after {} s", limit.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn int(v: &Value, field: &str) -> i64 {
    v.field(field).and_then(Value::as_int).unwrap_or(-1)
}

pub fn text(v: &Value, field: &str) -> String {
    v.field(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
