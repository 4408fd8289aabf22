//! The server without a listener: any stream, and hyper/axum upgrades.

use std::net::SocketAddr;
use std::sync::Arc;

use ws_session::{Io, Transport};

use crate::server::Shared;
use crate::slot::{Pending, Slot};
use crate::upgrade::{Incoming, handle_connection};
use crate::{Registry, ShutdownHandle};

/// A server's classes, pages, registry and limits, without a listener: what
/// [`ServerBuilder::build`](crate::ServerBuilder::build) makes and
/// [`Server::endpoint`](crate::Server::endpoint) shares. Cheap to clone.
///
/// * [`serve_connection`](Endpoint::serve_connection) serves any byte stream you accepted
///   yourself (a Unix socket, TLS of your own, a test's duplex).
/// * With the `hyper` feature, `Endpoint::upgrade` hands an HTTP upgrade request
///   from hyper or axum to the class model, so a `Router` serves the classes next to its own
///   routes on one port.
///
/// Either way the sockets join the same registry (rooms, `open_server`, presence, the
/// cluster) and the same graceful shutdown ([`shutdown_handle`](Endpoint::shutdown_handle))
/// as the listener's, under the same `max_connections` and `max_pending_handshakes`.
///
/// Sockets run on [`Transport`]: a plain `TcpStream` keeps its direct path (no box), any
/// other stream is boxed once (a virtual call per system call; see `benches/README.md` for
/// the echo path measured both ways).
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("open", &self.shared.slots.open()).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Its registry of sockets.
    pub fn registry(&self) -> Registry {
        self.shared.registry.clone()
    }

    /// A handle that stops it gracefully (every socket closed with 1001; handshakes in flight
    /// answered 503).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: self.shared.clone() }
    }

    /// Serves one connection you accepted yourself, over any stream: the request head, a
    /// page or the upgrade, then the socket on a task of its own. Returns once the handshake
    /// is over. A connection over `max_connections` or `max_pending_handshakes`, or arriving
    /// during shutdown, is closed at once. (A `TcpStream` goes straight in; TLS configured
    /// on the builder applies to the listener only: wrap the stream yourself.)
    pub async fn serve_connection(&self, stream: impl Io, peer: Option<SocketAddr>) {
        if self.shared.stop.is_cancelled() {
            return;
        }
        let Some(slot) = Slot::take(&self.shared) else { return };
        let Some(pending) = Pending::take(&slot) else { return };
        handle_connection(Incoming::Other(into_transport(stream)), peer, slot, pending).await;
    }

    /// Reads the TLS certificate files again now (as SIGHUP does); new handshakes get the new
    /// certificate. An error leaves the one in use; without TLS files it is `NotFound`.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self) -> std::io::Result<()> {
        match &self.shared.cert_files {
            Some(files) => files.reload(),
            None => {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no TLS certificate files configured"))
            }
        }
    }
}

/// A `TcpStream` keeps the direct path; anything else is boxed.
fn into_transport(stream: impl Io) -> Transport {
    let mut slot = Some(stream);
    if let Some(tcp) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<tokio::net::TcpStream>>() {
        return Transport::Tcp(tcp.take().expect("present"));
    }
    Transport::boxed(slot.take().expect("present"))
}
