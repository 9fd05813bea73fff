//! TLS through the stream seam: `client` dials nodes and sentinels over TLS, and the PEM
//! readers here serve the proxy's server side too. Settings are named after Redis's `tls-*`.

pub mod client;

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::RootCertStore;

/// ring, the one provider Hive builds with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// How nodes and sentinels are reached: TLS with `backend.tls`, else TCP. A mistake names
/// the key at fault and the reason.
pub fn dialer(
    b: &crate::config::BackendConfig,
) -> Result<Arc<dyn crate::stream::Dialer>, crate::config::BadSetting> {
    use crate::config::BadSetting;
    if !b.tls {
        return Ok(Arc::new(crate::stream::TcpDialer));
    }
    let ca = b.tls_ca_cert_file.clone().ok_or_else(|| BadSetting {
        key: "backend.tls_ca_cert_file",
        reason: "backend.tls needs the CA that signs the nodes' certificates".to_string(),
    })?;
    let d = client::TlsDialer::load(&client::ClientFiles {
        ca,
        cert: b.tls_cert_file.clone(),
        key: b.tls_key_file.clone(),
        server_name: b.tls_server_name.clone(),
    })
    .map_err(|reason| BadSetting {
        key: "backend.tls",
        reason,
    })?;
    Ok(Arc::new(d))
}
