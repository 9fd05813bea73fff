//! Growing and shrinking a live deployment (`hive add-shard`, `remove-shard`, `rebalance`,
//! `reshard`). Floors, lowest first: `error` → `view` (what the nodes say, parsed) → `plan`
//! (pure: which slot goes where, with its keys and bytes) → `session` (connections to the
//! nodes) → `run` (moving slots, resuming open ones) → `members` (nodes joining and leaving) and `standalone` (sentinel and static modes: the
//! slot map on the masters, handovers guarded by hive-module).
#![forbid(unsafe_code)]

pub mod error;
pub mod members;
pub mod plan;
pub mod run;
pub mod session;
pub mod standalone;
pub mod view;

pub use error::ReshardError;
