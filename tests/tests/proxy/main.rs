//! The proxy serving clients, against real nodes: routing in front of a 3+3 cluster, bad
//! input and limits, real client libraries, heavy clients, commands across slots, what apps
//! written for one Redis expect, and hive-common checked against a live redis-server.

mod blocking_pops;
mod cache;
mod clients;
mod common_live;
mod cross_slot;
mod heavy;
mod one_redis;
mod protocol;
mod proxy_cluster;
mod tracking;
