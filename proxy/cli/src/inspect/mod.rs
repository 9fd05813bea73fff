//! Subcommands that look at a deployment without changing it: `hive status` (one shot),
//! `hive check` (the health suite) and `hive monitor` (a live dashboard), and `view`, what
//! they show of a snapshot, worded once.

pub mod check;
pub mod monitor;
pub mod status;
pub mod view;
