//! hive-proxy: a cluster-aware RESP proxy (`hive proxy`) and the local tooling (`hive up`).
#![forbid(unsafe_code)]

pub mod client;
pub mod clients;
pub mod cluster_view;
pub mod config;
pub mod dispatch;
pub mod drill;
pub mod error;
pub mod local;
pub mod localcluster;
pub mod localsentinel;
pub mod merge;
pub mod pubsub;
pub mod route;
pub mod scan;
pub mod scripts;
pub mod server;
pub mod session;
pub mod shared;
pub mod signal;
pub mod stats;
pub mod upstream;
