//! The registration table: the module's commands, configs and timer as Redis learns them
//! (through `redis_module!`), each entry point wrapped so that a panic becomes an error reply
//! instead of aborting redis-server.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis_module::configuration::{ConfigurationContext, ConfigurationFlags};
use redis_module::{redis_module, Context, RedisError, RedisResult, RedisString, Status};

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
            crate::handover::init(ctx);
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
    data_types: [],
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
