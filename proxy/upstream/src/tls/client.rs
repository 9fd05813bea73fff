//! The backend-facing TLS dialer (`backend.tls*`): nodes and sentinels are reached over TLS,
//! their certificates checked against `tls_ca_cert_file`, with a client certificate when one
//! is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use super::{certs, key, provider, roots};
use crate::stream::{BoxStream, DialFuture, Dialer, TcpDialer};

#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name certificates must carry; by default the host of each address.
    pub server_name: Option<String>,
}

pub struct TlsDialer {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl TlsDialer {
    pub fn load(f: &ClientFiles) -> Result<TlsDialer, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots(&f.ca)?);
        let config = match (&f.cert, &f.key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c)?, key(k)?)
                .map_err(|e| format!("{}: {e}", k.display()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls_cert_file and tls_key_file go together".into()),
        };
        let server_name = match &f.server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| format!("tls_server_name `{n}`: {e}"))?,
            ),
            None => None,
        };
        Ok(TlsDialer {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

impl Dialer for TlsDialer {
    fn dial<'a>(&'a self, addr: &'a str, timeout: Duration) -> DialFuture<'a> {
        Box::pin(async move {
            let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
            let name = match &self.server_name {
                Some(n) => n.clone(),
                None => {
                    let (host, _) = hive_common::addr::split(addr)
                        .ok_or_else(|| bad(format!("{addr} is not host:port")))?;
                    ServerName::try_from(host.to_string())
                        .map_err(|e| bad(format!("{host}: {e}")))?
                }
            };
            let tcp = TcpDialer::connect(addr, timeout).await?;
            let tls = tokio::time::timeout(timeout, self.connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("TLS handshake timed out after {timeout:?}"),
                    )
                })??;
            Ok(Box::new(tls) as BoxStream)
        })
    }
}
