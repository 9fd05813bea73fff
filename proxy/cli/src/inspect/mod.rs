//! Subcommands that look at a deployment without changing it: `hive status` (one shot),
//! `hive check` (the health suite), `hive monitor` (a live dashboard), `hive top` (hot and
//! big keys), and `view`, what
//! they show of a snapshot, worded once.

pub mod check;
pub mod monitor;
pub mod status;
pub mod top;
pub mod view;
