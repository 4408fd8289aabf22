//! The listener: accepting under the connection limits, and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use ws_proto::CloseCode;

use crate::builder::{Page, Route};
use crate::slot::{Pending, Slot, Slots};
use crate::upgrade::{Incoming, handle_connection};
use crate::{OriginPolicy, Registry, ServerBuilder, ServerConfig};

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// `config.socket`, shared by every socket rather than copied into each.
    pub(crate) socket_config: Arc<ws_session::Config>,
    pub(crate) classes: HashMap<(String, String), Route>,
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) pages: HashMap<String, Page>,
    pub(crate) origins: OriginPolicy,
    pub(crate) registry: Registry,
    /// Cancelled when shutdown begins.
    pub(crate) stop: CancellationToken,
    /// Every connection's task (handshake, socket, `on_post_server`): shutdown waits for
    /// them.
    pub(crate) slots: Slots,
    /// Connections being answered 503 right now (the answer lingers briefly).
    pub(crate) refusing: AtomicUsize,
    /// Metrics (and the admin page), when turned on.
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    /// `/metrics` and `/admin` are served on a listener of their own, not on the main one.
    pub(crate) admin_apart: bool,
    /// TLS on the listener, when configured.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Certificate files to reload, when TLS came from files.
    #[cfg(feature = "tls")]
    pub(crate) cert_files: Option<Arc<crate::tls::CertFiles>>,
}

/// A bound WebSocket server. [`run`](Server::run) serves until
/// [`ShutdownHandle::shutdown`] is called.
pub struct Server {
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    /// The listener of `/metrics` and `/admin`, when they have their own
    /// ([`ServerBuilder::admin_addr`](crate::ServerBuilder::admin_addr)).
    pub(crate) admin: Option<TcpListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl Server {
    /// Starts building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the listener of `/metrics` and `/admin`, when they have their own
    /// ([`ServerBuilder::admin_addr`](crate::ServerBuilder::admin_addr)).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Its registry of sockets.
    pub fn registry(&self) -> Registry {
        self.shared.registry.clone()
    }

    /// A handle that stops the server gracefully from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: self.shared.clone() }
    }

    /// The same classes, registry and limits without the listener: to serve other streams
    /// (a Unix socket) or upgrade requests from hyper/axum beside this listener.
    pub fn endpoint(&self) -> crate::Endpoint {
        crate::Endpoint { shared: self.shared.clone() }
    }

    /// Accepts connections, one task each, until shut down by a [`ShutdownHandle`]; returns
    /// once it stopped accepting (the sockets are still closing then: see
    /// [`run_until`](Server::run_until) for a server that returns when they are gone).
    pub async fn run(mut self) -> std::io::Result<()> {
        if let Some(admin) = self.admin.take() {
            tracing::info!(addr = ?admin.local_addr().ok(), "serving /metrics and /admin");
            tokio::spawn(crate::admin::serve(admin, self.shared.clone()));
        }
        let shared = &self.shared;
        #[cfg(feature = "tls")]
        if let Some(files) = &shared.cert_files {
            let every = shared.config.tls_reload_interval;
            tokio::spawn(crate::tls::watch(files.clone(), every, shared.stop.clone()));
        }
        let scheme = if self.is_tls() { "https/wss" } else { "http/ws" };
        tracing::info!(addr = %self.local_addr, scheme, "listening");
        loop {
            tokio::select! {
                biased;
                _ = shared.stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(stream, peer, shared),
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        tracing::info!("stopped accepting");
        Ok(())
    }

    /// Does the listener speak TLS?
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.shared.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Serves until `signal` completes, then shuts down gracefully (as
    /// [`ShutdownHandle::shutdown`] does: no new connections, handshakes in flight answered
    /// 503, every socket closed with 1001) and returns once the last connection's task,
    /// `on_post_server` included, has finished, or `shutdown_timeout` has passed. The style
    /// of axum's and hyper's `with_graceful_shutdown`.
    ///
    /// ```no_run
    /// # async fn run(server: ws_server::Server) -> std::io::Result<()> {
    /// // SIGTERM (systemd, Docker, Kubernetes) or Ctrl-C.
    /// server.run_until(ws_server::shutdown_signal()).await
    /// # }
    /// ```
    #[doc(alias = "with_graceful_shutdown")]
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.shutdown_handle();
        let serve = self.run();
        tokio::pin!(serve);
        tokio::select! {
            served = &mut serve => served?,
            () = signal => {
                tracing::info!("shutdown signal: closing every socket");
            }
        }
        let left = handle.shutdown().await;
        if left > 0 {
            tracing::warn!(left, "shutdown timeout passed with connections still open");
        } else {
            tracing::info!("shut down");
        }
        serve.await
    }
}

/// Completes when the process is asked to stop: SIGTERM or SIGINT (Ctrl-C) on Unix, Ctrl-C
/// elsewhere. Pass it to [`Server::run_until`].
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM: Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stops a server: no more connections, every socket closed with 1001, a bounded wait.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").field("stopping", &self.is_stopping()).finish()
    }
}

impl ShutdownHandle {
    /// Stops accepting, answers 503 to handshakes in flight, asks every socket to close with
    /// 1001 ("going away"), and waits until every connection's task has finished (its
    /// `on_post_server` included) or `shutdown_timeout` has passed. Returns the number of
    /// connections still open when it gave up waiting (0 when all are gone).
    pub async fn shutdown(&self) -> usize {
        let shared = &self.shared;
        // Cancel first, then close: a socket registered after `close_all` looked sees the
        // cancellation (see `run_socket`), so none is missed.
        shared.stop.cancel();
        shared.registry.close_all(CloseCode::GOING_AWAY, SHUTTING_DOWN);
        let _ = tokio::time::timeout(shared.config.shutdown_timeout, shared.slots.all_gone()).await;
        shared.slots.open()
    }

    /// Completes when shutdown begins: for the application's own background tasks.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.shared.stop.cancelled()
    }

    /// A token cancelled when shutdown begins (a child: cancelling it does not stop the
    /// server).
    pub fn token(&self) -> CancellationToken {
        self.shared.stop.child_token()
    }

    /// Has shutdown begun?
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.is_cancelled()
    }
}

/// The reason sockets get with 1001 on shutdown.
pub(crate) const SHUTTING_DOWN: &str = "server shutting down";

/// An accepted connection: its task, or a quick 503 when the server is at a limit.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let slot = Slot::take(shared).and_then(|slot| Some((Pending::take(&slot)?, slot)));
    match slot {
        Some((pending, slot)) => {
            tokio::spawn(handle_connection(Incoming::Tcp(stream), Some(peer), slot, pending));
        }
        None => refuse_busy(stream, shared),
    }
}

/// Answers 503 to a connection over a limit, without reading its request. The answer
/// lingers a moment (so unread input does not turn the close into a reset that destroys the
/// 503), for at most 256 connections at a time; past that they are simply closed. (Over TLS
/// the plain-text answer is no use: such a connection is closed at once.)
fn refuse_busy(stream: TcpStream, shared: &Arc<Shared>) {
    #[cfg(feature = "tls")]
    if shared.tls.is_some() {
        return;
    }
    // Written once: a flood of refused connections allocates nothing per connection.
    static BUSY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let mut busy = Vec::with_capacity(160);
        ws_proto::write_error_response(&mut busy, 503, &[("Retry-After", "1")], "server busy\n");
        busy
    });
    if stream.try_write(&BUSY).is_err() {
        return;
    }
    if shared.refusing.fetch_add(1, Ordering::AcqRel) >= 256 {
        shared.refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(1..) = stream.read(&mut sink).await {}
        })
        .await;
        shared.refusing.fetch_sub(1, Ordering::AcqRel);
    });
}
