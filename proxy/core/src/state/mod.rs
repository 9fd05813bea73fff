//! The stores every client task shares, and `Shared`, which holds them with the config, the
//! counters and the backplane: the client registry, script bodies, the pub/sub index, CLIENT
//! PAUSE, the slow log and the MONITOR clients.

pub mod monitor;
pub mod pause;
pub mod pubsub_index;
pub mod registry;
pub mod scripts;
mod shared;
pub mod slowlog;

pub use shared::Shared;
