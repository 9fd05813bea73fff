//! Where a node keeps its slot state across restarts, as Redis Cluster keeps its map in
//! nodes.conf: `hive-slots-<port>.json` in Redis's `dir` (its working directory), written whole
//! (temp file, fsync, rename) on every change. Not in the RDB, so RDBs and backups stay
//! loadable by a Redis without hive-module. A replica gets its master's state over replication:
//! each change as it happens, and the whole state (`HIVE.SETSLOTS SYNC`) whenever the master
//! sees a replica come online (a full sync carries no past commands), even an empty state.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use hive_common::info::Replication;
use redis_module::Context;

use crate::slots::SlotState;

static FILE: OnceLock<PathBuf> = OnceLock::new();
/// The master's online replicas at the last tick: a new one gets the whole state.
static ONLINE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn port(ctx: &Context) -> Option<String> {
    let v = ctx.call("CONFIG", &["GET", "port"]).ok()?;
    match v {
        redis_module::RedisValue::Array(a) => match a.get(1)? {
            redis_module::RedisValue::SimpleString(s) | redis_module::RedisValue::BulkString(s) => {
                Some(s.clone())
            }
            redis_module::RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
            _ => None,
        },
        _ => None,
    }
}

/// Reads the state this node saved before it stopped, if any.
pub fn load(ctx: &Context) -> Option<SlotState> {
    let file = PathBuf::from(format!("hive-slots-{}.json", port(ctx)?));
    let _ = FILE.set(file.clone());
    let text = std::fs::read_to_string(&file).ok()?;
    match SlotState::from_json(&text) {
        Ok(st) => Some(st),
        Err(e) => {
            ctx.log_warning(&format!(
                "hive-module: {} is unreadable ({e}); starting without a slot state",
                file.display()
            ));
            None
        }
    }
}

/// Writes `st` whole; an error is logged (the change stands in memory and is replicated).
pub fn save(ctx: &Context, st: &SlotState) {
    let Some(file) = FILE.get() else { return };
    let tmp = file.with_extension("json.tmp");
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(st.to_json().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if let Err(e) = r {
        ctx.log_warning(&format!(
            "hive-module: cannot write {}: {e}",
            file.display()
        ));
    }
}

/// On a master: the whole state to the replicas when one came online since the last tick.
pub fn tick(ctx: &Context, repl: &Replication, st: &SlotState) {
    let online: BTreeSet<String> = repl
        .replicas
        .iter()
        .filter(|r| r.state == "online")
        .map(|r| format!("{}:{}", r.host, r.port))
        .collect();
    let mut last = ONLINE.lock().unwrap_or_else(|p| p.into_inner());
    let joined = online.iter().any(|r| !last.contains(r));
    if repl.role != "master" {
        last.clear();
        return;
    }
    // Sent even when empty: a node that was a master before (a failed-over one, or a source
    // whose last slot left) must not keep marks of its own.
    if joined {
        // A paused master must not replicate (see the heartbeat): the next tick tries again.
        if ctx.avoid_replication_traffic() {
            return;
        }
        ctx.replicate("hive.setslots", &["SYNC", st.to_json().as_str()]);
    }
    *last = online;
}
