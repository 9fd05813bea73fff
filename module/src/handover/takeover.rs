//! The adapter for a source that fails over mid-move (`slots::takeover`, `slots::imports`):
//! `HIVE.SETSLOTS INFLIGHT` and `FORGET`, the role-change event that turns standby handovers
//! into guarded ones before the promoted node serves its first command, and the target's
//! look at CLUSTER NODES that imports from the promoted node instead of the dead one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use redis_module::server_events::{ServerRole, ROLE_CHANGED_SERVER_EVENTS_LIST};
use redis_module::{CallOptionsBuilder, CallResult, Context, RedisResult, RedisString, RedisValue};

use super::{err, state, store, HANDING};
use crate::node::now_ms;
use crate::slots::imports::Imports;
use hive_common::topology::nodes::parse_nodes;

/// How often a cluster node looks at its importing slots.
const LOOK_MS: u64 = 500;
static LAST_LOOK: AtomicU64 = AtomicU64::new(0);
static IMPORTS: LazyLock<Mutex<Imports>> = LazyLock::new(|| Mutex::new(Imports::default()));

/// On a cluster master, every `LOOK_MS`: a slot imported from a master the cluster marked
/// failed is given to the replica that took its place, and imported from it.
pub fn look(ctx: &Context) {
    let now = now_ms();
    if now.saturating_sub(LAST_LOOK.load(Ordering::Relaxed)) < LOOK_MS
        || !ctx
            .get_flags()
            .contains(redis_module::ContextFlags::CLUSTER)
    {
        return;
    }
    LAST_LOOK.store(now, Ordering::Relaxed);
    let Ok(RedisValue::SimpleString(text) | RedisValue::BulkString(text)) =
        ctx.call("CLUSTER", &["NODES"])
    else {
        return;
    };
    let Ok(nodes) = parse_nodes(&text) else {
        return;
    };
    let repairs = IMPORTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .look(&nodes);
    for r in repairs {
        let slot = r.slot.to_string();
        let node = ctx.call("CLUSTER", &["SETSLOT", &slot, "NODE", &r.owner]);
        let importing = ctx.call("CLUSTER", &["SETSLOT", &slot, "IMPORTING", &r.owner]);
        match (node, importing) {
            (Ok(_), Ok(_)) => ctx.log_notice(&format!(
                "hive-module: slot {slot} was imported from a failed master; now owned by, and imported from, its promoted replica {}",
                r.owner
            )),
            (a, b) => ctx.log_warning(&format!(
                "hive-module: slot {slot}: could not import from {} instead of its failed source: {:?} {:?}",
                r.owner,
                a.err(),
                b.err()
            )),
        }
    }
}

/// `HIVE.SETSLOTS INFLIGHT [key …]`: the keys of the next round of MIGRATEs (none: clears).
pub fn inflight(ctx: &Context, keys: &[RedisString], replayed: bool) -> RedisResult {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_slice().to_vec()).collect();
    let mut st = state();
    match st.set_inflight(keys) {
        Ok(n) => {
            store::save(ctx, &st);
            drop(st);
            ctx.replicate_verbatim();
            Ok(RedisValue::Integer(n as i64))
        }
        Err(_) if replayed => Ok(RedisValue::Integer(0)),
        Err(e) => Err(err(e)),
    }
}

/// `HIVE.SETSLOTS FORGET key …`: on a promoted master, these suspect keys were found on the
/// target too, whose copy is the live one: the copies here go (each DEL replicated and in the
/// AOF as a DEL), and they are no longer held back. Keys that are not suspect are left alone.
pub fn forget(ctx: &Context, keys: &[RedisString], replayed: bool) -> RedisResult {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_slice().to_vec()).collect();
    let mut st = state();
    let gone = st.forget(&keys);
    store::save(ctx, &st);
    drop(st);
    if !replayed {
        let opts = CallOptionsBuilder::new()
            .replicate()
            .errors_as_replies()
            .build();
        for k in &gone {
            let args: [&[u8]; 1] = [k];
            let _: CallResult = ctx.call_ext("DEL", &opts, &args[..]);
        }
    }
    ctx.replicate_verbatim();
    Ok(RedisValue::Integer(gone.len() as i64))
}

#[linkme::distributed_slice(ROLE_CHANGED_SERVER_EVENTS_LIST)]
fn on_role_change(ctx: &Context, role: ServerRole) {
    if role != ServerRole::Primary {
        return;
    }
    // A panic must not cross into Redis.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let mut st = state();
        if !st.promote() {
            return;
        }
        HANDING.store(!st.migrating.is_empty(), Ordering::Release);
        store::save(ctx, &st);
        ctx.log_notice(&format!(
            "hive-module: promoted in the middle of a slot move: guarding {} slot(s), holding back {} key(s) until `hive reshard --resume`",
            st.migrating.len(),
            st.suspects().len()
        ));
    }));
}
