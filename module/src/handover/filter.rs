//! The command filter that gives a standalone master Redis Cluster's source-node behaviour for
//! the slots it hands over (`slots::guard` decides; this file is only the FFI around it). It
//! costs one atomic load per command while no slot is handed over.
//!
//! Unsafe here, and only here: redis-module 2.0.8 has no safe wrapper for command filters, so
//! the raw API is called directly. Every pointer comes from Redis for the duration of the call.
#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;

use super::{state, HANDING};
use crate::slots::guard::judge;

/// A detached context for key lookups from the filter (which gets no context of its own).
static LOOKUP: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(std::ptr::null_mut());

/// Whether the filter is in place (handovers are refused without it).
pub static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Registers the filter; false if this Redis lacks the API.
pub fn register(ctx: *mut raw::RedisModuleCtx) -> bool {
    unsafe {
        let (Some(detach), Some(reg)) = (
            raw::RedisModule_GetDetachedThreadSafeContext,
            raw::RedisModule_RegisterCommandFilter,
        ) else {
            return false;
        };
        LOOKUP.store(detach(ctx), Ordering::Release);
        // NOSELF: the module's own ctx.call()s are not filtered.
        let ok = !reg(
            ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as c_int,
        )
        .is_null();
        ACTIVE.store(ok, Ordering::Release);
        ok
    }
}

extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    if !HANDING.load(Ordering::Acquire) {
        return;
    }
    // A panic must not cross into Redis; the command then runs unfiltered.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { apply(fctx) }));
}

unsafe fn apply(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let ctx = LOOKUP.load(Ordering::Acquire);
    let (Some(count), Some(get), Some(ptrlen), Some(flags)) = (
        raw::RedisModule_CommandFilterArgsCount,
        raw::RedisModule_CommandFilterArgGet,
        raw::RedisModule_StringPtrLen,
        raw::RedisModule_GetContextFlags,
    ) else {
        return;
    };
    if ctx.is_null() {
        return;
    }
    let f = flags(ctx) as u32;
    // Only a serving master hands slots over; replicas apply their master's stream as it is.
    if f & raw::REDISMODULE_CTX_FLAGS_MASTER == 0 || f & raw::REDISMODULE_CTX_FLAGS_LOADING != 0 {
        return;
    }
    let n = count(fctx);
    let mut args: Vec<&[u8]> = Vec::with_capacity(n.max(0) as usize);
    for i in 0..n {
        let s = get(fctx, i);
        if s.is_null() {
            return;
        }
        let mut len = 0usize;
        let p = ptrlen(s, &mut len);
        args.push(if p.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(p as *const u8, len)
        });
    }
    let verdict = {
        let st = state();
        judge(&args, &st.migrating, st.suspects(), |key| exists(ctx, key))
    };
    if let Some(error) = verdict.error() {
        refuse(fctx, n, &error);
    }
}

unsafe fn exists(ctx: *mut raw::RedisModuleCtx, key: &[u8]) -> bool {
    let (Some(create), Some(free)) = (raw::RedisModule_CreateString, raw::RedisModule_FreeString)
    else {
        return true;
    };
    let name = create(std::ptr::null_mut(), key.as_ptr().cast(), key.len());
    let found = match raw::RedisModule_KeyExists {
        Some(ke) => ke(ctx, name) != 0,
        None => match (raw::RedisModule_OpenKey, raw::RedisModule_CloseKey) {
            (Some(open), Some(close)) => {
                let k = open(ctx, name, raw::REDISMODULE_READ as c_int);
                let found = !k.is_null();
                if found {
                    close(k);
                }
                found
            }
            _ => true,
        },
    };
    free(std::ptr::null_mut(), name);
    found
}

/// Renames the command to its refusal (`ASK 866 host:port`), without arguments. Redis then
/// answers `-ERR unknown command 'ASK 866 host:port', …`, which Hive reads as the redirect;
/// and inside MULTI it rejects the command when queued, so the whole transaction aborts
/// (EXECABORT) instead of running its other commands (a command that replied the error itself
/// would be queued, and fail alone at EXEC).
unsafe fn refuse(fctx: *mut raw::RedisModuleCommandFilterCtx, n: c_int, error: &str) {
    let (Some(del), Some(replace), Some(create)) = (
        raw::RedisModule_CommandFilterArgDelete,
        raw::RedisModule_CommandFilterArgReplace,
        raw::RedisModule_CreateString,
    ) else {
        return;
    };
    for i in (1..n).rev() {
        del(fctx, i);
    }
    let name = create(std::ptr::null_mut(), error.as_ptr().cast(), error.len());
    replace(fctx, 0, name);
}
