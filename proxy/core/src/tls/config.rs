//! TLS built from the config: the client-facing acceptor (`proxy.tls_*`) and the dialer for
//! nodes and sentinels (`backend.tls*`). Errors name the file, the key and the reason.

use std::path::Path;
use std::sync::Arc;

use super::server::{Acceptor, ServerFiles};
use crate::config::{Config, ConfigError};
use crate::stream::Dialer;

impl Acceptor {
    /// The TLS acceptor, when `proxy.tls_listen` is set.
    pub fn from_config(config: &Config, file: &Path) -> Result<Option<Acceptor>, ConfigError> {
        let p = &config.proxy;
        if p.tls_listen.is_none() {
            return Ok(None);
        }
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.into(),
            key: key.into(),
            reason,
        };
        let cert = p.tls_cert_file.clone().ok_or_else(|| {
            bad(
                "proxy.tls_cert_file",
                "tls_listen needs a certificate".into(),
            )
        })?;
        let key = p.tls_key_file.clone().ok_or_else(|| {
            bad(
                "proxy.tls_key_file",
                "tls_listen needs a private key".into(),
            )
        })?;
        Acceptor::load(ServerFiles {
            cert,
            key,
            ca: p.tls_ca_cert_file.clone(),
            auth_clients: p.tls_auth_clients,
        })
        .map(Some)
        .map_err(|reason| bad("proxy.tls_listen", reason))
    }
}

/// How nodes and sentinels are reached: TLS with `backend.tls`, else TCP.
pub fn dialer(config: &Config, file: &Path) -> Result<Arc<dyn Dialer>, ConfigError> {
    hive_upstream::tls::dialer(&config.backend).map_err(|e| ConfigError::Invalid {
        file: file.into(),
        key: e.key.into(),
        reason: e.reason,
    })
}
