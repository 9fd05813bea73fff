//! hive-local: Redis processes on this machine's loopback for `hive up`, the drills and the
//! tests. `process` runs one redis-server/redis-sentinel; `cluster` forms a Redis Cluster;
//! `sentinel` forms master/replica groups with sentinels (or static groups). Everything is
//! killed on Drop. Operator-side code, so errors are `anyhow`.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod process;
pub mod restart;
pub mod sentinel;
pub mod wait;

pub use cluster::{ClusterOpts, LocalCluster};
pub use process::{free_port_block, free_port_pair, module_path, RedisProcess};
pub use sentinel::{GroupOpts, LocalGroups};
pub use wait::{block_on, wait_until};
