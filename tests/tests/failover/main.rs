//! Topology changes and failovers against real redis-server and redis-sentinel processes:
//! sentinel and static modes, resharding and killed masters under load, reads from replicas,
//! the failover push, and `hive drill failover`.

mod drill;
mod failover_push;
mod replica_reads;
mod resilience;
mod sentinel;
mod write_ack;
