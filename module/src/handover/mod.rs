//! `HIVE.SLOTS` (read the slot state, acknowledge a map) and `HIVE.SETSLOTS` (store a map, open
//! and close handovers; replicated, and saved by `store`), over the pure `slots` state. The
//! adapter half; the filter that acts on handovers is `filter`, and a promotion mid-move is
//! `takeover`.

pub mod filter;
pub mod store;
pub mod takeover;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use redis_module::{Context, ContextFlags, RedisError, RedisResult, RedisString, RedisValue};

use crate::node::now_ms;
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

pub(crate) fn err(msg: impl Into<String>) -> RedisError {
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

/// `HIVE.SETSLOTS MAP <json> | MIGRATING <host:port> <slots> | STABLE [<slots> [AFTER <ms>]]
/// | STANDBY <host:port> <slots> | INFLIGHT [key …] | FORGET key …`, and `SYNC <state>` from
/// the master over replication.
pub fn setslots(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let flags = ctx.get_flags();
    let sub = arg(&args, 1).to_ascii_lowercase();
    // The AOF replays what the state file already holds (it is written on every change, the
    // AOF up to a second later): the file wins.
    if flags.contains(ContextFlags::LOADING) {
        return Ok(RedisValue::Integer(0));
    }
    // From the master's stream: apply what can be applied, never refuse.
    let replayed = flags.contains(ContextFlags::REPLICATED);
    if sub == "sync" {
        if !replayed || args.len() != 3 {
            return Err(err(
                "HIVE.SETSLOTS SYNC is sent by the master's hive module over replication, not by clients",
            ));
        }
        let st = SlotState::from_json(&arg(&args, 2)).map_err(err)?;
        HANDING.store(!st.migrating.is_empty(), Ordering::Release);
        store::save(ctx, &st);
        *state() = st;
        return Ok(RedisValue::SimpleStringStatic("OK"));
    }
    match sub.as_str() {
        "inflight" => return takeover::inflight(ctx, &args[2..], replayed),
        "forget" if args.len() > 2 => return takeover::forget(ctx, &args[2..], replayed),
        "forget" => return Err(RedisError::WrongArity),
        _ => {}
    }
    if (sub == "migrating" || sub == "standby") && !filter::ACTIVE.load(Ordering::Acquire) {
        return Err(err(
            "this Redis gives modules no command filter; slots cannot be handed over",
        ));
    }
    let mut st = state();
    let done = match (sub.as_str(), args.len()) {
        ("map", 3) => st.set_map(&arg(&args, 2)).map(|_| 1),
        ("migrating", 4) => st.set_migrating(&arg(&args, 2), &arg(&args, 3)),
        ("standby", 4) => st.set_standby(&arg(&args, 2), &arg(&args, 3)),
        ("stable", 2) => st.set_stable(None),
        ("stable", 3) => st.set_stable(Some(&arg(&args, 2))),
        ("stable", 5) if arg(&args, 3).eq_ignore_ascii_case("after") => {
            match args[4].parse_integer() {
                Ok(ms) if ms >= 0 => st.set_stable_after(&arg(&args, 2), now_ms() + ms as u64),
                _ => Err("AFTER takes milliseconds (an integer ≥ 0)".to_string()),
            }
        }
        ("map" | "migrating" | "stable" | "standby", _) => return Err(RedisError::WrongArity),
        _ => {
            return Err(err(format!(
                "unknown subcommand '{}'. Try HIVE.SETSLOTS MAP, MIGRATING, STABLE, STANDBY, INFLIGHT or FORGET",
                arg(&args, 1)
            )))
        }
    };
    HANDING.store(!st.migrating.is_empty(), Ordering::Release);
    let epoch = st.epoch();
    if done.is_ok() {
        store::save(ctx, &st);
    }
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

/// At load: the state this node saved before it stopped.
pub fn init(ctx: &Context) {
    if let Some(st) = store::load(ctx) {
        HANDING.store(!st.migrating.is_empty(), Ordering::Release);
        *state() = st;
    }
}

/// Every tick: guards whose time is up end, and a master sends its whole state to a replica
/// that just came online.
pub fn tick(ctx: &Context, repl: &hive_common::info::Replication) {
    let mut st = state();
    if st.expire(now_ms()) {
        HANDING.store(!st.migrating.is_empty(), Ordering::Release);
        store::save(ctx, &st);
    }
    let st = st.clone();
    store::tick(ctx, repl, &st);
    takeover::look(ctx);
}
