//! The fault harness of issue 30: deployments whose every process lives in a network namespace
//! of its own (`netns`), real faults on them (kill -9, partitions, SIGSTOP), and a load through
//! Hive that records every acknowledged write (`workload`), so each scenario reports the
//! acknowledged writes lost, stale reads, client errors and the time to the first successful
//! write (`scenario`).

pub mod cluster;
pub mod netns;
pub mod relay;
pub mod scenario;
pub mod sentinel;
pub mod workload;
