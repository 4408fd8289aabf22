//! TLS on the server's own listener: rustls (the `ring` provider) through tokio-rustls, with
//! certificate files that reload without a restart.
//!
//! A reload swaps the certificate the resolver hands to *new* handshakes; connections already
//! open keep the session they negotiated, so none is dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// The provider every TLS configuration here is built on.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and key read from PEM files, reloaded when asked.
#[derive(Debug)]
pub(crate) struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last loaded (or last tried).
    stamp: Mutex<Option<(SystemTime, SystemTime)>>,
}

impl CertFiles {
    pub(crate) fn load(cert: PathBuf, key: PathBuf) -> io::Result<CertFiles> {
        let provider = provider();
        let stamp = stamp(&cert, &key);
        let current = read_pair(&cert, &key, &provider)?;
        Ok(CertFiles {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(current)),
            stamp: Mutex::new(stamp),
        })
    }

    /// Reads the files again and serves the new certificate to new handshakes. On an error
    /// the certificate in use stays.
    pub(crate) fn reload(&self) -> io::Result<()> {
        let stamp = stamp(&self.cert, &self.key);
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        let fresh = read_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Reloads when either file's modification time changed since the last attempt.
    fn reload_if_changed(&self) {
        let now = stamp(&self.cert, &self.key);
        let changed = *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if changed && now.is_some() {
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded (files changed)")
                }
                Err(e) => {
                    tracing::warn!(cert = %self.cert.display(), error = %e, "TLS certificate not reloaded: keeping the current one")
                }
            }
        }
    }

    /// The rustls configuration that serves these files: ALPN `http/1.1`.
    pub(crate) fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn stamp(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> io::Result<CertifiedKey> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cert.display())))?;
    let key_pem =
        std::fs::read(key).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", key.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!("{}: no CERTIFICATE in it", cert.display())));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| invalid(format!("{}: {e}", key.display())))?;
    CertifiedKey::from_der(chain, key_der, provider)
        .map_err(|e| invalid(format!("{} and {}: {e}", cert.display(), key.display())))
}

/// Reloads `files` on SIGHUP and when they change (checked every `every`), until `stop`.
pub(crate) async fn watch(files: Arc<CertFiles>, every: Duration, stop: CancellationToken) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP: reloading on file changes only"))
        .ok();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => files.reload_if_changed(),
            () = hup => match files.reload() {
                Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded (SIGHUP)"),
                Err(e) => tracing::warn!(error = %e, "TLS certificate not reloaded on SIGHUP: keeping the current one"),
            },
        }
    }
}
