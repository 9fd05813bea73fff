//! The control plane's tasks, each following one aspect of the deployment into the
//! `Backplane`: the topology (`source`, by mode: `cluster`, `sentinel`, and the deployment's own slot map, `deployed`), replicas' lag for
//! reads (`replicas`), hive-module's failover events (`push`) and the facts poll (`collect`).

pub mod cluster;
pub mod collect;
pub mod deployed;
pub mod push;
pub mod replicas;
pub mod sentinel;
pub mod source;
