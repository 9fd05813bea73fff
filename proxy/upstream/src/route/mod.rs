//! Reaching the master (or a replica) that owns a slot: the per-thread connection `pool`, and
//! the `router` that runs sub-requests with MOVED/ASK and holds.

pub mod pool;
pub mod router;

pub use router::Router;
