//! Command handlers and the timer tick: read Redis state with `ctx.call`, hand it to the pure
//! modules (INFO parsing in hive-common, `shapes`, `event`, `backup`, `reply`), and turn their
//! answers into Redis values (RESP3 maps, flattened for RESP2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redis_module::redisvalue::RedisValueKey;
use redis_module::{Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};

use crate::backup::aof as backup_aof;
use crate::backup::cmd::{self as backup_cmd, BackupCmd};
use crate::backup::job::{self as backup_job, Job, Step};
use crate::backup::path as backup_path;
use crate::backup::{self, Metadata};
use crate::config::{BACKUP_DIR, BACKUP_DIRS_ALLOWED, BACKUP_HOOK, BACKUP_KEEP, HEARTBEAT_MS};
use crate::event::{self, LinkState};
use crate::reply::Reply;
use crate::shapes;
use hive_common::info::{self, Replication};

pub const MODULE_VERSION: &str = env!("CARGO_PKG_VERSION");

struct State {
    loaded_ms: u64,
    /// The master's clock in the last heartbeat, and our clock when it arrived.
    hb_master_ms: Option<u64>,
    hb_local_ms: Option<u64>,
    last_sent_ms: u64,
    link: Option<LinkState>,
    pending: Option<Job>,
    /// A finished BGSAVE being captured and hashed on a background thread.
    finishing: Arc<AtomicBool>,
    /// Backups started with an explicit DIR, by id.
    dirs: HashMap<String, PathBuf>,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| {
    Mutex::new(State {
        loaded_ms: now_ms(),
        hb_master_ms: None,
        hb_local_ms: None,
        last_sent_ms: 0,
        link: None,
        pending: None,
        finishing: Arc::new(AtomicBool::new(false)),
        dirs: HashMap::new(),
    })
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn init() {
    LazyLock::force(&STATE);
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn err(msg: impl Into<String>) -> RedisError {
    RedisError::String(format!("ERR {}", msg.into()))
}

fn text(v: RedisValue) -> String {
    match v {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => s,
        RedisValue::SimpleStringStatic(s) => s.to_string(),
        RedisValue::StringBuffer(b) | RedisValue::VerbatimString((_, b)) => {
            String::from_utf8_lossy(&b).into_owned()
        }
        RedisValue::BulkRedisString(s) => s.to_string_lossy(),
        other => format!("{other:?}"),
    }
}

fn call_text(ctx: &Context, cmd: &str, args: &[&str]) -> Result<String, RedisError> {
    ctx.call(cmd, args).map(text)
}

fn s(v: impl Into<String>) -> RedisValue {
    RedisValue::BulkString(v.into())
}

fn int(v: i64) -> RedisValue {
    RedisValue::Integer(v)
}

fn replication(ctx: &Context) -> Result<Replication, RedisError> {
    Ok(info::replication(&call_text(
        ctx,
        "INFO",
        &["replication"],
    )?))
}

fn cluster_enabled(ctx: &Context) -> Result<bool, RedisError> {
    let text = call_text(ctx, "INFO", &["cluster"])?;
    Ok(info::fields(&text).get("cluster_enabled") == Some(&"1"))
}

fn cluster_self(ctx: &Context) -> Result<Option<info::ClusterSelf>, RedisError> {
    if !cluster_enabled(ctx)? {
        return Ok(None);
    }
    Ok(info::cluster_self(&call_text(ctx, "CLUSTER", &["NODES"])?))
}

/// `HIVE.TOPOLOGY`
pub fn topology(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let repl = replication(ctx)?;
    let server = call_text(ctx, "INFO", &["server"])?;
    let run_id = info::fields(&server).get("run_id").copied().unwrap_or("");
    let me = cluster_self(ctx)?;
    Ok(value(shapes::topology(
        &repl,
        run_id,
        me.as_ref(),
        MODULE_VERSION,
    )))
}

/// `HIVE.LAG`
pub fn lag(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let repl = replication(ctx)?;
    let st = state();
    let hb = shapes::Heartbeats {
        master_ms: st.hb_master_ms,
        local_ms: st.hb_local_ms,
        loaded_ms: st.loaded_ms,
    };
    drop(st);
    Ok(value(shapes::lag(&repl, hb, now_ms())))
}

/// `HIVE.HEARTBEAT <unix_ms>`: replicated by the master's tick; recorded only when it arrives
/// over replication (AOF replays and clients do not count).
pub fn heartbeat(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    let flags = ctx.get_flags();
    if flags.contains(ContextFlags::REPLICATED) {
        let ms = args[1]
            .parse_integer()
            .map_err(|_| err("value is not an integer or out of range"))?;
        let mut st = state();
        st.hb_master_ms = Some(ms.max(0) as u64);
        st.hb_local_ms = Some(now_ms());
        return Ok(RedisValue::SimpleStringStatic("OK"));
    }
    if flags.contains(ContextFlags::LOADING) {
        return Ok(RedisValue::SimpleStringStatic("OK"));
    }
    Err(err(
        "HIVE.HEARTBEAT is sent by the master's hive module over replication, not by clients",
    ))
}

/// Runs every `min(hive.heartbeat-ms, 100)` ms on every node.
pub fn tick(ctx: &Context) {
    let now = now_ms();
    let Ok(repl) = replication(ctx) else { return };
    let hb = HEARTBEAT_MS.load(Ordering::Relaxed);
    let mut st = state();
    // A paused master (CLIENT PAUSE, FAILOVER, manual cluster failover) must not replicate:
    // doing so crashes 7.0; the pause shows up as lag instead.
    if hb > 0
        && repl.role == "master"
        && now.saturating_sub(st.last_sent_ms) >= hb as u64
        && !ctx.avoid_replication_traffic()
    {
        ctx.replicate("hive.heartbeat", &[now.to_string().as_str()]);
        st.last_sent_ms = now;
    }
    let link = LinkState::of(&repl);
    crate::handover::tick(ctx, &repl);
    let events = event::changes(st.link.as_ref(), &link, repl.offset, now);
    st.link = Some(link);
    let pending = st.pending.is_some();
    drop(st);
    for e in events {
        let _ = ctx.call("PUBLISH", &[event::CHANNEL, &event::to_json(&e)]);
    }
    if pending {
        check_backup(ctx);
    }
}

/// Hands a finished BGSAVE to a background thread (capture, sha256, metadata, hook).
fn check_backup(ctx: &Context) {
    let Ok(persistence) = call_text(ctx, "INFO", &["persistence"]) else {
        return;
    };
    let mut st = state();
    let Some(job) = st.pending.take() else { return };
    let p = match job.poll(&persistence, now_ms()) {
        Step::Running(job) => {
            st.pending = Some(job);
            return;
        }
        Step::Failed(job) => {
            let _ = job.meta.write(&job.dir);
            return;
        }
        Step::Saved(job) => job,
    };
    let finishing = st.finishing.clone();
    finishing.store(true, Ordering::SeqCst);
    let hook = BACKUP_HOOK.lock().map(|h| h.clone()).unwrap_or_default();
    let keep = BACKUP_KEEP.load(Ordering::Relaxed).max(0) as usize;
    std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(move || {
            backup::finish(
                p.meta,
                &p.rdb,
                p.aof.as_ref(),
                &p.dir,
                &hook,
                keep,
                now_ms(),
            );
        });
        finishing.store(false, Ordering::SeqCst);
    });
}

fn config(ctx: &Context, name: &str) -> Result<String, RedisError> {
    match ctx.call("CONFIG", &["GET", name])? {
        RedisValue::Array(a) if a.len() == 2 => Ok(text(a[1].clone())),
        _ => Err(err(format!("cannot read CONFIG {name}"))),
    }
}

/// Where backups go: `hive.backup-dir`, else `<dir>/hive-backups`.
fn backup_root(ctx: &Context) -> Result<PathBuf, RedisError> {
    let configured = BACKUP_DIR.lock().map(|d| d.clone()).unwrap_or_default();
    if !configured.is_empty() {
        return Ok(PathBuf::from(configured));
    }
    Ok(Path::new(&config(ctx, "dir")?).join("hive-backups"))
}

/// A pure reply as a Redis value.
fn value(r: Reply) -> RedisValue {
    match r {
        Reply::Null => RedisValue::Null,
        Reply::Bool(b) => RedisValue::Bool(b),
        Reply::Int(n) => int(n),
        Reply::Float(f) => RedisValue::Float(f),
        Reply::Str(t) => s(t),
        Reply::Array(a) => RedisValue::Array(a.into_iter().map(value).collect()),
        Reply::Map(m) => RedisValue::OrderedMap(
            m.into_iter()
                .map(|(k, v)| (RedisValueKey::String(k), value(v)))
                .collect(),
        ),
    }
}

fn meta_value(m: &Metadata) -> RedisValue {
    value(Reply::of(m))
}

/// `HIVE.BACKUP START [DIR path] [TAG tag] [AOF] | STATUS [id] | LIST | PRUNE KEEP n`
pub fn backup(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy()).collect();
    let cmd = backup_cmd::parse(&words).map_err(|e| match e {
        Some(msg) => err(msg),
        None => RedisError::WrongArity,
    })?;
    match cmd {
        BackupCmd::Start { dir, tag, aof } => start(ctx, dir, tag, aof),
        BackupCmd::Record { tag } => record(ctx, tag),
        BackupCmd::Status(id) => {
            let root = backup_root(ctx)?;
            let st = state();
            let id = match id {
                Some(id) if !backup_path::valid_id(&id) => {
                    return Err(err(format!("no such backup '{id}'")))
                }
                Some(id) => id,
                None => match &st.pending {
                    Some(p) => p.meta.id.clone(),
                    None => backup::list(&root)
                        .last()
                        .map(|m| m.id.clone())
                        .ok_or_else(|| err("no backups yet"))?,
                },
            };
            let dir = st.dirs.get(&id).cloned().unwrap_or_else(|| root.join(&id));
            drop(st);
            Metadata::read(&dir)
                .map(|m| meta_value(&m))
                .ok_or_else(|| err(format!("no such backup '{id}'")))
        }
        BackupCmd::List => Ok(RedisValue::Array(
            backup::list(&backup_root(ctx)?)
                .iter()
                .map(meta_value)
                .collect(),
        )),
        BackupCmd::Prune { keep } => {
            let n = backup::prune(&backup_root(ctx)?, keep)
                .map_err(|e| err(format!("prune failed: {e}")))?;
            Ok(int(n as i64))
        }
    }
}

fn start(ctx: &Context, dir: Option<PathBuf>, tag: Option<String>, aof: bool) -> RedisResult {
    {
        let st = state();
        if st.pending.is_some() || st.finishing.load(Ordering::SeqCst) {
            return Err(err("backup already in progress"));
        }
    }
    let configured = backup_root(ctx)?;
    let root = match dir {
        Some(d) => {
            let allowed = BACKUP_DIRS_ALLOWED
                .lock()
                .map(|a| backup_path::allowed_dirs(&a))
                .unwrap_or_default();
            backup_path::confine(&d, &configured, &allowed).map_err(err)?
        }
        None => configured,
    };
    let rdb = Path::new(&config(ctx, "dir")?).join(config(ctx, "dbfilename")?);
    let persistence = call_text(ctx, "INFO", &["persistence"])?;
    let saves_before = backup_job::saves(&persistence);
    let now = now_ms();
    let (id, dir) = backup::claim(&root, now)
        .map_err(|e| err(format!("cannot write to {}: {e}", root.display())))?;
    let meta = Metadata {
        status: "running".into(),
        method: Some("module".into()),
        ..this_node(ctx, &id, tag, now)?
    };
    let fail = |meta: Metadata, why: String| {
        let mut failed = meta;
        failed.status = "failed".into();
        failed.error = Some(why.clone());
        let _ = failed.write(&dir);
        let _ = std::fs::remove_dir_all(dir.join("aof.staging"));
        err(why)
    };
    meta.write(&dir)
        .map_err(|e| err(format!("cannot write to {}: {e}", dir.display())))?;
    // The AOF set is staged here, on the main thread, in the same command as the fork below:
    // both are the node's state at this instant.
    let staged = if aof {
        match stage_aof(ctx, &dir) {
            Ok(s) => Some(s),
            Err(why) => return Err(fail(meta, why)),
        }
    } else {
        None
    };
    if let Err(e) = ctx.call("BGSAVE", &[] as &[&str]) {
        return Err(fail(meta, format!("BGSAVE refused: {e}")));
    }
    let mut st = state();
    st.dirs.insert(id.clone(), dir.clone());
    st.pending = Some(Job {
        meta,
        dir,
        rdb,
        saves_before,
        aof: staged,
    });
    Ok(s(id))
}

/// A backup's metadata as this node describes itself now: id, node, role, slots, offset,
/// keys, versions.
fn this_node(
    ctx: &Context,
    id: &str,
    tag: Option<String>,
    now: u64,
) -> Result<Metadata, RedisError> {
    let repl = replication(ctx)?;
    let me = cluster_self(ctx)?;
    let server = call_text(ctx, "INFO", &["server"])?;
    let dbsize = match ctx.call("DBSIZE", &[] as &[&str])? {
        RedisValue::Integer(n) => n,
        _ => -1,
    };
    Ok(Metadata {
        id: id.to_string(),
        tag,
        started_ms: now,
        node_id: me.as_ref().map(|m| m.id.clone()),
        role: repl.role.clone(),
        slots: me.map(|m| m.slots).unwrap_or_default(),
        repl_offset: repl.offset,
        dbsize,
        redis_version: info::fields(&server)
            .get("redis_version")
            .unwrap_or(&"")
            .to_string(),
        module_version: MODULE_VERSION.into(),
        hook: "none".into(),
        ..Default::default()
    })
}

/// `HIVE.BACKUP RECORD TAG t`: a backup of this node that `hive backup` streamed over the
/// network, recorded as done now (no file here), so LIST's newest backup counts it.
fn record(ctx: &Context, tag: String) -> RedisResult {
    let root = backup_root(ctx)?;
    let now = now_ms();
    let (id, dir) = backup::claim(&root, now)
        .map_err(|e| err(format!("cannot write to {}: {e}", root.display())))?;
    let meta = Metadata {
        status: "done".into(),
        finished_ms: Some(now),
        method: Some("network".into()),
        ..this_node(ctx, &id, Some(tag), now)?
    };
    meta.write(&dir)
        .map_err(|e| err(format!("cannot write to {}: {e}", dir.display())))?;
    Ok(s(id))
}

/// Links the node's multi-part AOF set into the backup's staging directory.
fn stage_aof(ctx: &Context, backup_dir: &Path) -> Result<backup_aof::Staged, String> {
    let get = |name: &str| config(ctx, name).map_err(|e| format!("{e}"));
    if get("appendonly")? != "yes" {
        return Err("AOF is off on this node (appendonly no): nothing to capture".into());
    }
    let aof_dir = Path::new(&get("dir")?).join(get("appenddirname")?);
    let manifest = format!("{}.manifest", get("appendfilename")?);
    backup_aof::stage(&aof_dir, &manifest, &backup_dir.join("aof.staging"))
}
