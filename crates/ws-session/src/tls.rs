//! `wss://` for the client: rustls on the `ring` provider, webpki's roots by default or the
//! application's own (a private CA, a test's).

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::Error;

/// A client TLS configuration trusting `roots`, offering ALPN `http/1.1` (the WebSocket
/// handshake is HTTP/1.1).
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The default: Mozilla's roots as webpki-roots ships them (the same on every machine; no
/// platform store to read). Built once per process.
pub(crate) fn default_client_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            client_config(roots)
        })
        .clone()
}

/// A configuration that trusts only the CA certificates in `pem` (every `CERTIFICATE` block).
pub(crate) fn config_trusting_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::InvalidInput(format!("root CA PEM: {e}")))?;
        roots.add(cert).map_err(|e| Error::InvalidInput(format!("root CA certificate: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(Error::InvalidInput("root CA PEM: no CERTIFICATE in it".into()));
    }
    Ok(client_config(roots))
}

/// The TLS handshake on a connected stream, for `host` (a DNS name or an IP address).
pub(crate) async fn connect_tls(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::InvalidInput(format!("not a TLS server name: {host}")))?;
    Ok(tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?)
}
