//! hive-module: a Redis module giving Hive's proxy and CLI precise facts from inside each node:
//! `HIVE.TOPOLOGY`, `HIVE.LAG` (with a replicated heartbeat), `HIVE.BACKUP` and role/link
//! events on `__hive__:events`. The logic lives in `event` and `backup` (and INFO parsing in hive-common), which do not
//! touch Redis; `ffi` and `node` are the adapter, compiled out of unit tests (the Redis
//! allocator aborts outside redis-server).
// Unit tests compile without the FFI adapter, the only caller of some pure helpers.
#![cfg_attr(test, allow(dead_code))]

mod backup;
mod event;
#[cfg(not(test))]
mod ffi;
#[cfg(not(test))]
mod node;
