//! hive-module: a Redis module giving Hive's proxy and CLI precise facts from inside each node:
//! `HIVE.TOPOLOGY`, `HIVE.LAG` (with a replicated heartbeat), `HIVE.BACKUP` and role/link
//! events on `__hive__:events`. The logic lives in `event`, `backup/`, `shapes`, `reply` and
//! `config` (INFO parsing in hive-common), which do not touch Redis; `register` (the table of
//! commands and configs) and `node` (the handlers) are the adapter, compiled out of unit tests
//! (the Redis allocator aborts outside redis-server).
// Unit tests compile without the FFI adapter, the only caller of some pure helpers.
#![cfg_attr(test, allow(dead_code))]

// The adapter catches panics with `catch_unwind` at every entry point; under `panic = "abort"`
// a panic would take redis-server down instead, so such a build is refused.
#[cfg(panic = "abort")]
compile_error!("hive-module needs panic = \"unwind\": its FFI entry points catch panics");

mod backup;
mod config;
mod event;
#[cfg(not(test))]
mod handover;
#[cfg(not(test))]
mod node;
#[cfg(not(test))]
mod register;
mod reply;
mod shapes;
mod slots;
