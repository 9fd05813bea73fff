//! What a request is and how its answer is made: classification by the command table
//! (`classify`), where it goes (`route`), how fanned-out replies merge (`merge`), SCAN cursors,
//! the script cache, pub/sub bookkeeping, and `local/` for the commands Hive answers itself.

mod action;
pub mod classify;
mod config_set;
mod cross_slot;
pub mod local_cmd;
pub mod pubsub;
pub mod reply;
pub mod route;
