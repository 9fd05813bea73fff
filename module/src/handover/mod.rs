//! `HIVE.SLOTS` (read the slot state, acknowledge a map) and `HIVE.SETSLOTS` (store a map, open
//! and close handovers; replicated and persisted in the RDB's aux field), over the pure
//! `slots` state. The adapter half; the filter that acts on handovers is `filter`.

pub mod filter;

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use redis_module::{raw, Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};

use crate::slots::acks::Acks;
use crate::slots::SlotState;

static STATE: LazyLock<Mutex<SlotState>> = LazyLock::new(|| Mutex::new(SlotState::default()));
static ACKS: LazyLock<Mutex<Acks>> = LazyLock::new(|| Mutex::new(Acks::default()));
/// Whether any slot is being handed over: the filter's one check per command otherwise.
pub static HANDING: AtomicBool = AtomicBool::new(false);

pub fn state() -> MutexGuard<'static, SlotState> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn acks() -> MutexGuard<'static, Acks> {
    ACKS.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn err(msg: impl Into<String>) -> RedisError {
    let msg = msg.into();
    // STALE is its own error code, as Redis words codes in capitals.
    if msg.starts_with("STALE ") {
        RedisError::String(msg)
    } else {
        RedisError::String(format!("ERR {msg}"))
    }
}

fn arg(args: &[RedisString], i: usize) -> String {
    args.get(i).map(|a| a.to_string_lossy()).unwrap_or_default()
}

/// `HIVE.SLOTS [GET] | ACK <proxy-id> <epoch> | ACKS`
pub fn slots(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let sub = arg(&args, 1).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("", 1) | ("get", 2) => Ok(RedisValue::BulkString(state().to_json())),
        ("epoch", 2) => Ok(RedisValue::Integer(state().epoch() as i64)),
        ("ack", 4) => {
            let epoch = args[3]
                .parse_integer()
                .ok()
                .filter(|e| *e >= 0)
                .ok_or_else(|| err("value is not an integer or out of range"))?;
            acks()
                .ack(&arg(&args, 2), epoch as u64, now_ms())
                .map_err(err)?;
            Ok(RedisValue::SimpleStringStatic("OK"))
        }
        ("acks", 2) => Ok(RedisValue::Array(
            acks()
                .list(now_ms())
                .into_iter()
                .map(|(id, e, age)| {
                    RedisValue::Array(vec![
                        RedisValue::BulkString(id),
                        RedisValue::Integer(e as i64),
                        RedisValue::Integer(age as i64),
                    ])
                })
                .collect(),
        )),
        ("get" | "epoch" | "ack" | "acks", _) => Err(RedisError::WrongArity),
        _ => Err(err(format!(
            "unknown subcommand '{}'. Try HIVE.SLOTS GET, EPOCH, ACK or ACKS",
            arg(&args, 1)
        ))),
    }
}

/// `HIVE.SETSLOTS MAP <json> | MIGRATING <host:port> <slots> | STABLE [<slots>]`
pub fn setslots(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let flags = ctx.get_flags();
    // From the master's stream or the AOF: apply what can be applied, never refuse (a replayed
    // older map after a newer RDB aux is simply not newer).
    let replayed =
        flags.contains(ContextFlags::REPLICATED) || flags.contains(ContextFlags::LOADING);
    let sub = arg(&args, 1).to_ascii_lowercase();
    if sub == "migrating" && !filter::ACTIVE.load(Ordering::Acquire) {
        return Err(err(
            "this Redis gives modules no command filter; slots cannot be handed over",
        ));
    }
    let mut st = state();
    let done = match (sub.as_str(), args.len()) {
        ("map", 3) => st.set_map(&arg(&args, 2)).map(|_| 1),
        ("migrating", 4) => st.set_migrating(&arg(&args, 2), &arg(&args, 3)),
        ("stable", 2) => st.set_stable(None),
        ("stable", 3) => st.set_stable(Some(&arg(&args, 2))),
        ("map" | "migrating" | "stable", _) => return Err(RedisError::WrongArity),
        _ => {
            return Err(err(format!(
                "unknown subcommand '{}'. Try HIVE.SETSLOTS MAP, MIGRATING or STABLE",
                arg(&args, 1)
            )))
        }
    };
    HANDING.store(!st.migrating.is_empty(), Ordering::Release);
    let epoch = st.epoch();
    drop(st);
    match done {
        Ok(n) => {
            ctx.replicate_verbatim();
            if sub == "map" && !replayed {
                // Proxies subscribed to this node read the new map at once.
                let ev = format!(
                    r#"{{"event":"slotmap","role":"master","epoch":{epoch},"time_ms":{}}}"#,
                    now_ms()
                );
                let _ = ctx.call("PUBLISH", &[crate::event::CHANNEL, &ev]);
            }
            Ok(RedisValue::Integer(n as i64))
        }
        Err(_) if replayed => Ok(RedisValue::Integer(0)),
        Err(e) => Err(err(e)),
    }
}

/// Saves the slot state into every RDB (also the ones a replica syncs from), so that a
/// restarted node, an AOF with an RDB preamble and a new replica keep it.
pub extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, _when: c_int) {
    let st = state();
    let json = if st.is_empty() {
        String::new()
    } else {
        st.to_json()
    };
    drop(st);
    raw::save_string(rdb, &json);
}

/// Redis 7.2+: the same, but a node with no slot state writes no aux field at all, so its RDB
/// also loads where hive-module is not (7.0 always writes the field: see docs).
pub extern "C" fn aux_save2(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if state().is_empty() {
        return;
    }
    aux_save(rdb, when);
}

pub extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, _encver: c_int, _when: c_int) -> c_int {
    let text = match raw::load_string_buffer(rdb) {
        Ok(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
        Err(_) => return raw::REDISMODULE_ERR as c_int,
    };
    let loaded = if text.is_empty() {
        Ok(SlotState::default())
    } else {
        SlotState::from_json(&text)
    };
    match loaded {
        Ok(st) => {
            HANDING.store(!st.migrating.is_empty(), Ordering::Release);
            *state() = st;
        }
        // Never fail the whole load over this field; the CLI can write the map again.
        Err(e) => redis_module::logging::log_warning(format!(
            "hive-module: the RDB's slot state is unreadable ({e}); starting without it"
        )),
    }
    raw::REDISMODULE_OK as c_int
}
