//! The client-facing TLS acceptor (`proxy.tls_*`): TLS 1.2 and 1.3, client certificates
//! required, optional or ignored (`tls_auth_clients`), re-read from disk by `reload` (SIGHUP)
//! without touching connections already open.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use hive_upstream::tls::{certs, key, provider, roots};

pub use crate::config::AuthClients;

#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

/// The current acceptor; replaced whole on reload.
pub struct Acceptor {
    files: ServerFiles,
    current: ArcSwap<TlsAcceptor>,
}

fn build(f: &ServerFiles) -> Result<TlsAcceptor, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&f.ca, f.auth_clients) {
        (_, AuthClients::No) => builder.with_no_client_auth(),
        (None, _) => {
            return Err(
                "tls_auth_clients needs tls_ca_cert_file to check client certificates".into(),
            )
        }
        (Some(ca), auth) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            let v = if auth == AuthClients::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let config = builder
        .with_single_cert(certs(&f.cert)?, key(&f.key)?)
        .map_err(|e| format!("{}: {e}", f.key.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Acceptor {
    pub fn load(files: ServerFiles) -> Result<Acceptor, String> {
        let a = build(&files)?;
        Ok(Acceptor {
            files,
            current: ArcSwap::from_pointee(a),
        })
    }

    /// Re-reads the certificate, key and CA; on an error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        self.current.store(Arc::new(build(&self.files)?));
        Ok(())
    }

    pub fn current(&self) -> Arc<TlsAcceptor> {
        self.current.load_full()
    }
}
