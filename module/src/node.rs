//! Command handlers and the timer tick: read Redis state with `ctx.call`, hand it to the pure
//! modules (`info`, `event`, `backup`), and build the replies (RESP3 maps, flattened for RESP2).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redis_module::redisvalue::RedisValueKey;
use redis_module::{Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};

use crate::backup::{self, Metadata};
use crate::event::{self, LinkState};
use crate::ffi::{BACKUP_DIR, BACKUP_HOOK, BACKUP_KEEP, HEARTBEAT_MS};
use hive_common::info::{self, Replication};

pub const MODULE_VERSION: &str = env!("CARGO_PKG_VERSION");

struct Pending {
    meta: Metadata,
    dir: PathBuf,
    rdb: PathBuf,
    saves_before: i64,
}

struct State {
    loaded_ms: u64,
    /// The master's clock in the last heartbeat, and our clock when it arrived.
    hb_master_ms: Option<u64>,
    hb_local_ms: Option<u64>,
    last_sent_ms: u64,
    link: Option<LinkState>,
    pending: Option<Pending>,
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

fn now_ms() -> u64 {
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

fn map(pairs: Vec<(&str, RedisValue)>) -> RedisValue {
    RedisValue::OrderedMap(
        pairs
            .into_iter()
            .map(|(k, v)| (RedisValueKey::String(k.into()), v))
            .collect::<BTreeMap<_, _>>(),
    )
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
    let sf = info::fields(&server);
    let me = cluster_self(ctx)?;
    let master = match &repl.master {
        Some((host, port)) => map(vec![
            ("host", s(host.clone())),
            ("port", int(i64::from(*port))),
            ("link_status", s(if repl.link_up { "up" } else { "down" })),
            (
                "last_io_age_ms",
                match repl.last_io_s {
                    Some(n) if n >= 0 => int(n * 1000),
                    _ => RedisValue::Null,
                },
            ),
        ]),
        None => RedisValue::Null,
    };
    let replicas = repl
        .replicas
        .iter()
        .map(|r| {
            map(vec![
                ("host", s(r.host.clone())),
                ("port", int(i64::from(r.port))),
                ("state", s(r.state.clone())),
                ("offset", int(r.offset)),
                ("lag_bytes", int(r.lag_bytes(repl.offset))),
            ])
        })
        .collect();
    Ok(map(vec![
        ("role", s(repl.role.clone())),
        ("run_id", s(sf.get("run_id").copied().unwrap_or(""))),
        (
            "node_id",
            me.as_ref().map_or(RedisValue::Null, |m| s(m.id.clone())),
        ),
        ("repl_offset", int(repl.offset)),
        ("master", master),
        ("replicas", RedisValue::Array(replicas)),
        ("cluster_enabled", RedisValue::Bool(me.is_some())),
        (
            "slots",
            RedisValue::Array(
                me.map(|m| m.slots)
                    .unwrap_or_default()
                    .into_iter()
                    .map(s)
                    .collect(),
            ),
        ),
        ("module_version", s(MODULE_VERSION)),
    ]))
}

/// `HIVE.LAG`
pub fn lag(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    let repl = replication(ctx)?;
    if repl.role == "master" {
        let replicas = repl
            .replicas
            .iter()
            .map(|r| {
                map(vec![
                    ("host", s(r.host.clone())),
                    ("port", int(i64::from(r.port))),
                    ("lag_bytes", int(r.lag_bytes(repl.offset))),
                    ("ack_age_ms", int(r.lag_s.max(0) * 1000)),
                ])
            })
            .collect();
        return Ok(map(vec![
            ("role", s("master")),
            ("replicas", RedisValue::Array(replicas)),
        ]));
    }
    let now = now_ms();
    let st = state();
    // Without any heartbeat yet, lag counts from module load: it grows, never reads 0.
    let lag_ms = now.saturating_sub(st.hb_master_ms.unwrap_or(st.loaded_ms));
    let since = now.saturating_sub(st.hb_local_ms.unwrap_or(st.loaded_ms));
    Ok(map(vec![
        ("role", s("replica")),
        ("lag_ms", int(lag_ms as i64)),
        ("since_last_heartbeat_ms", int(since as i64)),
        ("link", s(if repl.link_up { "up" } else { "down" })),
        // A replica cannot know the master's current offset.
        ("lag_bytes", RedisValue::Null),
    ]))
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
    let f = info::fields(&persistence);
    if f.get("rdb_bgsave_in_progress") != Some(&"0") {
        return;
    }
    let saves: i64 = f.get("rdb_saves").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut st = state();
    let Some(p) = st.pending.take() else { return };
    // `rdb_saves` counts BGSAVEs started; the status says whether this one succeeded.
    if saves <= p.saves_before || f.get("rdb_last_bgsave_status") != Some(&"ok") {
        let mut meta = p.meta;
        meta.status = "failed".into();
        meta.error = Some(format!(
            "BGSAVE failed (rdb_last_bgsave_status:{}); see the Redis log",
            f.get("rdb_last_bgsave_status").unwrap_or(&"?")
        ));
        meta.finished_ms = Some(now_ms());
        let _ = meta.write(&p.dir);
        return;
    }
    let finishing = st.finishing.clone();
    finishing.store(true, Ordering::SeqCst);
    let hook = BACKUP_HOOK.lock().map(|h| h.clone()).unwrap_or_default();
    let keep = BACKUP_KEEP.load(Ordering::Relaxed).max(0) as usize;
    std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(move || {
            backup::finish(p.meta, &p.rdb, &p.dir, &hook, keep, now_ms());
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

fn json_value(v: serde_json::Value) -> RedisValue {
    match v {
        serde_json::Value::Null => RedisValue::Null,
        serde_json::Value::Bool(b) => RedisValue::Bool(b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| RedisValue::Float(n.as_f64().unwrap_or(0.0)), int),
        serde_json::Value::String(t) => s(t),
        serde_json::Value::Array(a) => RedisValue::Array(a.into_iter().map(json_value).collect()),
        serde_json::Value::Object(o) => RedisValue::OrderedMap(
            o.into_iter()
                .map(|(k, v)| (RedisValueKey::String(k), json_value(v)))
                .collect(),
        ),
    }
}

fn meta_value(m: &Metadata) -> RedisValue {
    json_value(serde_json::to_value(m).unwrap_or_default())
}

/// `HIVE.BACKUP START [DIR path] [TAG tag] | STATUS [id] | LIST | PRUNE KEEP n`
pub fn backup(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy()).collect();
    let Some(sub) = words.first() else {
        return Err(RedisError::WrongArity);
    };
    match sub.to_ascii_uppercase().as_str() {
        "START" => start(ctx, &words[1..]),
        "STATUS" if words.len() <= 2 => {
            let root = backup_root(ctx)?;
            let st = state();
            let id = match words.get(1) {
                Some(id) => id.clone(),
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
        "LIST" if words.len() == 1 => Ok(RedisValue::Array(
            backup::list(&backup_root(ctx)?)
                .iter()
                .map(meta_value)
                .collect(),
        )),
        "PRUNE" if words.len() == 3 && words[1].eq_ignore_ascii_case("KEEP") => {
            let keep: usize = words[2]
                .parse()
                .map_err(|_| err("value is not an integer or out of range"))?;
            let n = backup::prune(&backup_root(ctx)?, keep)
                .map_err(|e| err(format!("prune failed: {e}")))?;
            Ok(int(n as i64))
        }
        "STATUS" | "LIST" | "PRUNE" => Err(err(format!(
            "wrong number of arguments for 'hive.backup|{}' command",
            sub.to_ascii_lowercase()
        ))),
        _ => Err(err(format!(
            "unknown subcommand '{sub}'. Try HIVE.BACKUP START|STATUS|LIST|PRUNE."
        ))),
    }
}

fn start(ctx: &Context, opts: &[String]) -> RedisResult {
    let (mut dir, mut tag) = (None, None);
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match (o.to_ascii_uppercase().as_str(), it.next()) {
            ("DIR", Some(v)) => dir = Some(PathBuf::from(v)),
            ("TAG", Some(v)) => tag = Some(v.clone()),
            _ => return Err(err("syntax error")),
        }
    }
    {
        let st = state();
        if st.pending.is_some() || st.finishing.load(Ordering::SeqCst) {
            return Err(err("backup already in progress"));
        }
    }
    let root = match dir {
        Some(d) => d,
        None => backup_root(ctx)?,
    };
    let rdb = Path::new(&config(ctx, "dir")?).join(config(ctx, "dbfilename")?);
    let persistence = call_text(ctx, "INFO", &["persistence"])?;
    let saves_before = info::fields(&persistence)
        .get("rdb_saves")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let repl = replication(ctx)?;
    let me = cluster_self(ctx)?;
    let server = call_text(ctx, "INFO", &["server"])?;
    let dbsize = match ctx.call("DBSIZE", &[] as &[&str])? {
        RedisValue::Integer(n) => n,
        _ => -1,
    };
    let now = now_ms();
    let id = backup::new_id(now);
    let meta = Metadata {
        id: id.clone(),
        tag,
        status: "running".into(),
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
    };
    let dir = root.join(&id);
    meta.write(&dir)
        .map_err(|e| err(format!("cannot write to {}: {e}", dir.display())))?;
    if let Err(e) = ctx.call("BGSAVE", &[] as &[&str]) {
        let mut failed = meta;
        failed.status = "failed".into();
        failed.error = Some(format!("{e}"));
        let _ = failed.write(&dir);
        return Err(err(format!("BGSAVE refused: {e}")));
    }
    let mut st = state();
    st.dirs.insert(id.clone(), dir.clone());
    st.pending = Some(Pending {
        meta,
        dir,
        rdb,
        saves_before,
    });
    Ok(s(id))
}
