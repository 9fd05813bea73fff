//! One shard's snapshot, by one of two methods chosen per node and reported: `module`
//! (`HIVE.BACKUP START` on the node, then its node-local copy read into the destination) or
//! `network` (the replication protocol). Each is taken in two steps so that `--consistent`
//! can pause writes across the fork only: `start` returns once the node has forked,
//! `transfer` moves the bytes.

pub mod module;
pub mod network;

use std::path::PathBuf;
use std::time::Duration;

use hive_upstream::conn::control::ControlConn;
use hive_upstream::Backplane;
use tokio::io::AsyncReadExt;

use crate::catalog::manifest::{ShardBackup, StoredFile};
use crate::catalog::rdb;
use crate::error::{BackupError, Result};
use crate::progress::{Bar, Progress, Unit};
use crate::store::{Sink, Store, Written};

/// `--method`: chosen per node, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Auto,
    Module,
    Network,
}

/// One shard's snapshot as planned: which node, how, and why.
#[derive(Debug, Clone)]
pub struct Plan {
    pub index: usize,
    pub name: String,
    pub node: String,
    pub role: String,
    pub master: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
    pub redis_version: String,
    pub module_version: Option<String>,
    pub module: bool,
    pub reason: String,
    /// The node's backup directory, as seen from here (module method).
    pub root: Option<PathBuf>,
}

impl Plan {
    /// The stored file's base name: the shard's index and name, safe as a path segment.
    pub fn file_base(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("shard-{}-{name}", self.index)
    }
}

/// Opens a control connection to `addr` the way the proxy would (credentials, TLS).
pub async fn connect(plane: &Backplane, addr: &str) -> Result<ControlConn> {
    let auth = plane.config.node_auth();
    plane
        .connector
        .control(addr, auth.as_ref())
        .await
        .map_err(|e| BackupError::node(addr, e))
}

/// Picks the method for `plan`'s node.
pub async fn choose(plane: &Backplane, plan: &mut Plan, method: Method) -> Result<()> {
    if method == Method::Network {
        plan.reason = "--method network".into();
        return Ok(());
    }
    if plan.module_version.is_none() {
        if method == Method::Module {
            return Err(BackupError::node(
                &plan.node,
                "--method module: hive-module is not loaded",
            ));
        }
        plan.reason = "no hive-module on the node".into();
        return Ok(());
    }
    let mut c = connect(plane, &plan.node).await?;
    let root = module::root(&mut c).await?;
    // The module creates its directory on the first backup: its parent is enough. A path
    // that exists here but is another machine's is caught after the backup (its file is not
    // here) and that shard is streamed instead.
    if root.is_dir() || root.parent().is_some_and(|p| p.is_dir()) {
        plan.module = true;
        plan.reason = format!(
            "hive-module; its backup directory {} is reachable here",
            root.display()
        );
        plan.root = Some(root);
    } else if method == Method::Module {
        return Err(BackupError::node(
            &plan.node,
            format!(
                "--method module: the node's backup directory {} is not reachable from here",
                root.display()
            ),
        ));
    } else {
        plan.reason = format!(
            "hive-module, but its backup directory {} is not reachable from here",
            root.display()
        );
    }
    Ok(())
}

/// A snapshot whose fork has happened.
pub enum Started {
    Network(network::Started),
    Module { conn: ControlConn, id: String },
}

pub async fn start(plane: &Backplane, plan: &Plan, tag: &str, aof: bool) -> Result<Started> {
    let mut conn = connect(plane, &plan.node).await?;
    if plan.module {
        let id = module::start(&mut conn, tag, aof).await?;
        return Ok(Started::Module { conn, id });
    }
    Ok(Started::Network(network::start(conn).await?))
}

/// Where a snapshot goes: the backup at `store`, and how its files are written.
pub struct Dest<'a> {
    pub store: &'a Store,
    pub backup_id: &'a str,
    pub compress: bool,
    /// Whether the RDB is kept (`--type rdb|both`); the AOF files always are when captured.
    pub rdb: bool,
}

/// Moves a started snapshot into the destination and describes it.
pub async fn transfer(
    plane: &Backplane,
    started: Started,
    plan: &Plan,
    dest: &Dest<'_>,
    progress: &Progress,
) -> Result<ShardBackup> {
    let mut out = ShardBackup {
        name: plan.name.clone(),
        node: plan.node.clone(),
        role: plan.role.clone(),
        slots: plan.slots.clone(),
        slot_count: plan.slot_count,
        redis_version: plan.redis_version.clone(),
        module_version: plan.module_version.clone(),
        method: if plan.module { "module" } else { "network" }.into(),
        method_reason: plan.reason.clone(),
        ..ShardBackup::default()
    };
    let ext = if dest.compress { ".rdb.zst" } else { ".rdb" };
    let file = format!("{}{ext}", plan.file_base());
    let bar = progress.bar(&plan.name, None, Unit::Bytes);
    let written = match started {
        Started::Network(s) => {
            out.repl_offset = s.offset;
            stream(s, dest, &file, &bar).await?
        }
        Started::Module { mut conn, id } => {
            let meta = module::wait(&mut conn, &id, Duration::from_secs(3600)).await?;
            out.repl_offset = module::int(&meta, "repl_offset");
            out.node_backup_id = Some(id.clone());
            let dir = plan.root.clone().unwrap_or_default().join(&id);
            let rdb_path = dir.join("dump.rdb");
            let size = module::int(&meta, "file_size");
            let local = std::fs::metadata(&rdb_path)
                .map(|m| m.len() as i64)
                .unwrap_or(-1);
            let aof_files = module_aof_files(&meta);
            if local != size {
                // The directory looked reachable but holds another node's files (or none).
                // The AOF exists only there; the RDB can be streamed instead, and that is said.
                if !aof_files.is_empty() {
                    return Err(BackupError::node(
                        &plan.node,
                        format!(
                            "hive-module backup {id} (with the AOF) is done on the node, but {} is not its directory here",
                            dir.display()
                        ),
                    ));
                }
                out.method = "network".into();
                out.method_reason = format!(
                    "hive-module backup {id} is done on the node, but {} is not its file here; streamed over the network",
                    rdb_path.display()
                );
                let s = network::start(connect(plane, &plan.node).await?).await?;
                out.repl_offset = s.offset;
                stream(s, dest, &file, &bar).await?
            } else {
                for f in aof_files {
                    let stored = format!(
                        "{}.aof/{f}{}",
                        plan.file_base(),
                        if dest.compress { ".zst" } else { "" }
                    );
                    let w = copy_file(&dir.join("aof").join(&f), dest, &stored, &bar).await?;
                    out.aof.push(StoredFile {
                        name: f,
                        file: stored,
                        size: w.stored_len,
                        sha256: w.sha256,
                        raw_size: w.raw_len,
                    });
                }
                if !dest.rdb {
                    bar.finish("done");
                    out.dbsize = module::int(&meta, "dbsize").max(0) as u64;
                    return Ok(out);
                }
                copy_file(&rdb_path, dest, &file, &bar).await?
            }
        }
    };
    bar.finish("done");
    let h = rdb::header(&written.head).map_err(|e| BackupError::node(&plan.node, e))?;
    if let Some(v) = h.redis_version {
        out.redis_version = v;
    }
    out.dbsize = h.db0_keys;
    out.expires = h.db0_expires;
    out.file = Some(file);
    out.size = written.stored_len;
    out.rdb_size = written.raw_len;
    out.sha256 = written.sha256;
    if out.method == "network" && plan.module_version.is_some() {
        // The node made no copy of its own: tell it, so its newest backup counts this one.
        let recorded = match connect(plane, &plan.node).await {
            Ok(mut c) => module::record(&mut c, dest.backup_id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::warn!(node = %plan.node, error = %e, "could not record the backup on the node");
        }
    }
    Ok(out)
}

/// Streams a started network snapshot into file `name` of the backup; nothing is left at the
/// destination if it fails.
async fn stream(s: network::Started, dest: &Dest<'_>, name: &str, bar: &Bar) -> Result<Written> {
    let mut sink = dest
        .store
        .create(dest.backup_id, name, dest.compress)
        .await?;
    match network::transfer(s, &mut sink, bar).await {
        Ok(_) => sink.finish().await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

/// The AOF files hive-module captured with the backup (`aof` in its metadata).
fn module_aof_files(meta: &hive_common::resp::Value) -> Vec<String> {
    meta.field("aof")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies a local file (the node-local backup) into file `name` of the backup; nothing is left
/// at the destination if it fails.
async fn copy_file(
    path: &std::path::Path,
    dest: &Dest<'_>,
    name: &str,
    bar: &Bar,
) -> Result<Written> {
    let mut sink = dest
        .store
        .create(dest.backup_id, name, dest.compress)
        .await?;
    match copy_into(path, &mut sink, bar).await {
        Ok(()) => sink.finish().await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

async fn copy_into(path: &std::path::Path, sink: &mut Sink, bar: &Bar) -> Result<()> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| BackupError::local(path, e))?;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut chunk)
            .await
            .map_err(|e| BackupError::local(path, e))?;
        if n == 0 {
            return Ok(());
        }
        sink.write(&chunk[..n]).await?;
        bar.inc(n as u64);
    }
}
