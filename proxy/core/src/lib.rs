//! hive-proxy: the data plane of Hive, a cluster-aware RESP proxy, on top of the backplane
//! (`hive_upstream`, which talks to the nodes). `server` accepts clients, `auth` knows the
//! proxy's users, `client` serves one connection, `command` classifies and answers, `config`
//! reads hive.toml, `metrics` counts, `admin` serves `/metrics` and the probes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod client;
pub mod command;
pub mod config;
pub mod emulate;
pub mod fleet;
pub mod metrics;
pub mod report;
pub mod server;
pub mod state;
pub mod tls;
pub mod tracking;

/// The primitives every floor uses, from the backplane's lowest floor.
pub use hive_upstream::{error, stream};
