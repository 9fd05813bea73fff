//! The registration table: the module's commands, configs and timer as Redis learns them
//! (through `redis_module!`), each entry point wrapped so that a panic becomes an error reply
//! instead of aborting redis-server.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis_module::configuration::{ConfigurationContext, ConfigurationFlags};
use redis_module::native_types::RedisType;
use redis_module::{raw, redis_module, Context, RedisError, RedisResult, RedisString, Status};

use crate::config::{BACKUP_DIR, BACKUP_DIRS_ALLOWED, BACKUP_HOOK, BACKUP_KEEP, HEARTBEAT_MS};

/// Runs a handler; a panic becomes an error reply instead of aborting redis-server.
fn guarded(
    ctx: &Context,
    args: Vec<RedisString>,
    f: fn(&Context, Vec<RedisString>) -> RedisResult,
) -> RedisResult {
    catch_unwind(AssertUnwindSafe(|| f(ctx, args))).unwrap_or_else(|_| {
        Err(RedisError::Str(
            "ERR hive-module: internal error (panic caught)",
        ))
    })
}

fn topology(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::node::topology)
}

fn lag(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::node::lag)
}

fn heartbeat(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::node::heartbeat)
}

fn backup(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::node::backup)
}

fn slots(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::handover::slots)
}

fn setslots(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, crate::handover::setslots)
}

/// A type with no keys, only there to carry the slot state in every RDB's aux field.
static SLOT_STATE: RedisType = RedisType::new(
    "hiveslots",
    1,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: None,
        rdb_save: None,
        aof_rewrite: None,
        mem_usage: None,
        digest: None,
        free: None,
        aux_load: Some(crate::handover::aux_load),
        aux_save: Some(crate::handover::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: Some(crate::handover::aux_save2),
    },
);

fn tick(ctx: &Context, _: ()) {
    let _ = catch_unwind(AssertUnwindSafe(|| crate::node::tick(ctx)));
    let hb = HEARTBEAT_MS.load(Ordering::Relaxed);
    let period = if hb > 0 { hb.min(100) } else { 100 };
    ctx.create_timer(Duration::from_millis(period as u64), tick, ());
}

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    // A panic while loading must fail the load, not abort redis-server.
    match catch_unwind(AssertUnwindSafe(crate::node::init)) {
        Ok(()) => {
            ctx.create_timer(Duration::from_millis(100), tick, ());
            if !crate::handover::filter::register(ctx.ctx) {
                ctx.log_warning("hive-module: no command filter API; slot handovers refused");
            }
            Status::Ok
        }
        Err(_) => {
            ctx.log_warning("hive-module: initialisation panicked; not loading");
            Status::Err
        }
    }
}

fn on_change<T>(_: &ConfigurationContext, _: &str, _: &'static T) {}

redis_module! {
    name: "hive",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [SLOT_STATE],
    init: init,
    commands: [
        ["hive.topology", topology, "readonly fast", 0, 0, 0, ""],
        ["hive.lag", lag, "readonly fast", 0, 0, 0, ""],
        // `write` so that a client calling it on a replica gets READONLY.
        ["hive.heartbeat", heartbeat, "write fast", 0, 0, 0, ""],
        ["hive.backup", backup, "admin", 0, 0, 0, ""],
        ["hive.slots", slots, "readonly fast allow-loading allow-stale", 0, 0, 0, ""],
        // `write`: replicated, in the AOF, refused on a replica.
        ["hive.setslots", setslots, "write deny-oom", 0, 0, 0, ""],
    ],
    configurations: [
        i64: [
            ["heartbeat-ms", &HEARTBEAT_MS, 100, 0, 60000, ConfigurationFlags::DEFAULT, Some(Box::new(on_change))],
            ["backup-keep", &BACKUP_KEEP, 0, 0, 100000, ConfigurationFlags::DEFAULT, Some(Box::new(on_change))],
        ],
        string: [
            // Immutable: where a node writes backups is the operator's choice, never a client's.
            ["backup-dir", &BACKUP_DIR, "", ConfigurationFlags::IMMUTABLE, Some(Box::new(on_change))],
            ["backup-dirs-allowed", &BACKUP_DIRS_ALLOWED, "", ConfigurationFlags::IMMUTABLE, Some(Box::new(on_change))],
            // Set only in redis.conf or at load time: a client must never choose what runs.
            ["backup-hook", &BACKUP_HOOK, "", ConfigurationFlags::IMMUTABLE, Some(Box::new(on_change))],
        ],
        bool: [],
        enum: [],
        module_args_as_configuration: true,
    ]
}
