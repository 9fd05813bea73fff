//! `proxy.fleet`: the other Hives in front of the same deployment (a list, or "discover"),
//! the address this one announces to cluster clients, and the checks on both.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// `proxy.fleet`: `["host:port", ...]` (the fleet's client addresses, this Hive's among them
/// or not) or `"discover"` (each Hive announces itself on the deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FleetSetting {
    Peers(Vec<String>),
    Word(String),
}

impl FleetSetting {
    /// The listed addresses; empty when discovered.
    pub fn peers(&self) -> &[String] {
        match self {
            FleetSetting::Peers(p) => p,
            FleetSetting::Word(_) => &[],
        }
    }
}

impl Config {
    /// The address cluster clients are given for this Hive: `proxy.announce`, else
    /// `proxy.listen` (validated not to be a wildcard when a fleet is set).
    pub fn announce(&self) -> String {
        self.proxy
            .announce
            .clone()
            .unwrap_or_else(|| self.proxy.listen.clone())
    }

    pub(super) fn validate_fleet(&self, file: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        if let Some(a) = &self.proxy.announce {
            if !super::validate::valid_host_port(a) {
                return Err(bad(
                    "proxy.announce",
                    format!("`{a}` is not a host:port address"),
                ));
            }
        }
        if self.proxy.fleet_heartbeat_ms < 50 {
            return Err(bad(
                "proxy.fleet_heartbeat_ms",
                "must be at least 50".into(),
            ));
        }
        let Some(fleet) = &self.proxy.fleet else {
            return Ok(());
        };
        match fleet {
            FleetSetting::Word(w) if w != "discover" => {
                return Err(bad(
                    "proxy.fleet",
                    format!("`{w}`: give a list of \"host:port\" or \"discover\""),
                ))
            }
            FleetSetting::Peers(p) => {
                if let Some(a) = p.iter().find(|a| !super::validate::valid_host_port(a)) {
                    return Err(bad(
                        "proxy.fleet",
                        format!("`{a}` is not a host:port address"),
                    ));
                }
            }
            FleetSetting::Word(_) => {}
        }
        if self.proxy.announce.is_none() {
            let wildcard = self
                .proxy
                .listen
                .parse::<SocketAddr>()
                .map_or(true, |a| a.ip().is_unspecified());
            if wildcard {
                return Err(bad(
                    "proxy.announce",
                    format!(
                        "needed with proxy.fleet when proxy.listen (`{}`) is not one address clients can reach: give the host:port clients reach this Hive at",
                        self.proxy.listen
                    ),
                ));
            }
        }
        Ok(())
    }
}
