//! TLS for the benchmarks, rustls on the `ring` provider as in the workspace: `wsload`'s client
//! configuration, the peers' server configuration, and the test certificates `gen-cert` writes.
//!
//! The client pins what both servers negotiate, so a comparison measures the WebSocket layers
//! over the same TLS work: TLS 1.3 only, the one suite TLS13_AES_128_GCM_SHA256, the X25519
//! key exchange, ALPN `http/1.1`, and no session resumption (every connection is a full
//! handshake, whatever tickets a server sends).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, ring};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol both sides offer: a WebSocket upgrade is an HTTP/1.1 request.
pub const ALPN: &[u8] = b"http/1.1";

/// A server's certificate chain and key, and the CA that signed it (PEM), made by [`test_ca`].
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The root CA certificate, for the client's `--ca`.
    pub ca_pem: String,
    /// The server certificate, for 127.0.0.1, ::1 and localhost.
    pub cert_pem: String,
    /// The server certificate's private key (PKCS#8).
    pub key_pem: String,
}

/// Makes a CA and a server certificate it signs for `127.0.0.1`, `::1` and `localhost`, both
/// ECDSA P-256 (the key type browsers and servers default to; signing is cheaper than RSA's).
///
/// ```
/// let certs = benches::test_ca().unwrap();
/// assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub fn test_ca() -> Result<TestCerts, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "wsload test CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut server = CertificateParams::new(["127.0.0.1", "::1", "localhost"].map(String::from).to_vec())?;
    server.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &issuer)?;
    Ok(TestCerts { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The ring provider with only what the client offers: TLS13_AES_128_GCM_SHA256 and X25519.
fn pinned_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![ring::kx_group::X25519],
        ..ring::default_provider()
    }
}

/// `wsload`'s client configuration: trusts only the CA certificates in `ca_pem` (a PEM file's
/// contents) and offers exactly one suite, one group and ALPN `http/1.1` (see the module docs).
pub fn client_config(ca_pem: &[u8]) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(invalid)?).map_err(invalid)?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate in the CA file"));
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(pinned_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(invalid)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// A peer server's configuration: rustls' defaults on the ring provider (what a user of
/// tokio-rustls gets), the certificate chain and key from PEM files, ALPN `http/1.1`.
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(format!("{}: {e}", key.display())))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(invalid)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_sides_agree_on_the_pinned_suite_and_alpn() {
        let certs = test_ca().unwrap();
        let dir = std::env::temp_dir().join(format!("benches-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &certs.cert_pem).unwrap();
        std::fs::write(&key, &certs.key_pem).unwrap();
        let server = tokio_rustls::TlsAcceptor::from(server_config(&cert, &key).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        let client = tokio_rustls::TlsConnector::from(client_config(certs.ca_pem.as_bytes()).unwrap());

        let (a, b) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(async move {
            let mut tls = server.accept(b).await.unwrap();
            let mut byte = [0];
            tls.read_exact(&mut byte).await.unwrap();
            tls.write_all(&byte).await.unwrap();
            tls.flush().await.unwrap();
        });
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = client.connect(name, a).await.unwrap();
        tls.write_all(b"x").await.unwrap();
        tls.flush().await.unwrap();
        let mut byte = [0];
        tls.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
        let (_, session) = tls.get_ref();
        assert_eq!(session.alpn_protocol(), Some(ALPN));
        assert_eq!(
            session.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        served.await.unwrap();

        assert!(client_config(b"not a certificate").is_err());
    }
}
