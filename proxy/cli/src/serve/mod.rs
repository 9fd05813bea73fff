//! Subcommands that serve: `hive proxy` (one endpoint in front of the nodes) and `hive up` (a
//! local deployment with the proxy in front).

pub mod proxy;
pub mod up;
