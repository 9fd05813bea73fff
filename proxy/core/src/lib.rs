//! hive-proxy: the data plane of Hive, a cluster-aware RESP proxy. `server` accepts clients,
//! `auth` knows the proxy's users, `client` serves one connection, `command` classifies and answers, `upstream` talks to the
//! Redis nodes and follows the topology, `config` reads hive.toml, `metrics` counts, `facts`
//! polls the nodes, `admin` serves `/metrics` and the probes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod client;
pub mod command;
pub mod config;
pub mod emulate;
pub mod error;
pub mod facts;
pub mod metrics;
pub mod server;
pub mod stream;
pub mod tls;
pub mod upstream;
