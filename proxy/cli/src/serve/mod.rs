//! Subcommands that serve: `hive proxy` (one endpoint in front of the nodes, following
//! systemd's conventions: `systemd`, and upgraded in place: `upgrade`) and `hive up` (a local
//! deployment with the proxy in front).

pub mod proxy;
pub mod systemd;
pub mod up;
pub mod upgrade;
