//! `ServerBuilder`: classes, routes, pages and settings, then `bind`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use ws_proto::CloseCode;

use crate::server::Shared;
use crate::slot::Slots;
use crate::{Endpoint, OriginPolicy, Registry, Server, ServerConfig, WebSocketServer};

type Factory = Arc<dyn Fn() -> Box<dyn WebSocketServer> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    pub(crate) factory: Factory,
}

#[derive(Clone)]
pub(crate) struct Page {
    pub(crate) content_type: String,
    pub(crate) body: Bytes,
}

/// Builds a [`Server`]: register classes, routes and pages, then [`bind`](ServerBuilder::bind).
///
/// ```no_run
/// # use ws_server::{Connection, Server, WebSocketServer, async_trait};
/// # struct Echo;
/// # #[async_trait] impl WebSocketServer for Echo {
/// #     async fn server(&mut self, ws: &mut Connection) -> Result<(), ws_server::Error> { Ok(()) }
/// # }
/// # async fn run() -> std::io::Result<()> {
/// let server = Server::builder()
///     .class("user", "MyApp.MyWebSocketServer", || Echo) // /csp/user/MyApp.MyWebSocketServer.cls
///     .route("/echo", || Echo)
///     .page("/", "text/html; charset=utf-8", "<h1>hello</h1>")
///     .bind("127.0.0.1:8080")
///     .await?;
/// server.run().await
/// # }
/// ```
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    classes: HashMap<(String, String), Route>,
    routes: HashMap<String, Route>,
    pages: HashMap<String, Page>,
    origins: OriginPolicy,
    registry: Option<Registry>,
    metrics: bool,
    admin_token: Option<String>,
    admin_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "tls")]
    tls: Option<TlsSource>,
}

#[cfg(feature = "tls")]
enum TlsSource {
    Config(Arc<rustls::ServerConfig>),
    Files(std::path::PathBuf, std::path::PathBuf),
}

impl ServerBuilder {
    /// Registers a server class for `/csp/<app>/<class>.cls`; `factory` makes one instance
    /// per connection.
    pub fn class<T, F>(mut self, app: &str, class: &str, factory: F) -> Self
    where
        T: WebSocketServer,
        F: Fn() -> T + Send + Sync + 'static,
    {
        let app = app.trim_matches('/').to_string();
        let route = Route { name: class.into(), factory: Arc::new(move || Box::new(factory())) };
        self.classes.insert((app, class.to_string()), route);
        self
    }

    /// Registers a server class at a plain path (`/echo`).
    pub fn route<T, F>(mut self, path: &str, factory: F) -> Self
    where
        T: WebSocketServer,
        F: Fn() -> T + Send + Sync + 'static,
    {
        let route = Route { name: path.into(), factory: Arc::new(move || Box::new(factory())) };
        self.routes.insert(path.to_string(), route);
        self
    }

    /// Serves `body` for `GET path` (a page such as the chat's).
    pub fn page(mut self, path: &str, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.pages.insert(path.to_string(), Page { content_type: content_type.into(), body: body.into() });
        self
    }

    /// Sets which Origins may connect.
    pub fn origins(mut self, policy: OriginPolicy) -> Self {
        self.origins = policy;
        self
    }

    /// Replaces the settings.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Largest message accepted (all fragments together, after inflation for a compressed
    /// one); larger ones are closed with 1009. 1 MiB by default
    /// ([`DEFAULT_MAX_MESSAGE`](crate::DEFAULT_MAX_MESSAGE)). The frame limit follows it while
    /// it equals the message limit (set [`max_frame_size`](ServerBuilder::max_frame_size) after
    /// this for another).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        let protocol = &mut self.config.socket.protocol;
        if protocol.max_frame_size == protocol.max_message_size {
            protocol.max_frame_size = bytes;
        }
        protocol.max_message_size = bytes;
        self
    }

    /// Largest frame payload accepted; larger frames are closed with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.socket.protocol.max_frame_size = bytes;
        self
    }

    /// Bound on one socket's queued output (see [`ws_session::Config::max_write_buffer`]).
    pub fn max_write_buffer(mut self, bytes: usize) -> Self {
        self.config.socket.max_write_buffer = bytes;
        self
    }

    /// How long a peer may accept no bytes while output waits before it is given up
    /// (`None`: forever). See [`ws_session::Config::write_timeout`].
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.socket.write_timeout = timeout;
        self
    }

    /// Bound on pushed frames waiting for one socket (see [`ServerConfig::max_queued_bytes`]).
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.config.max_queued_bytes = bytes;
        self
    }

    /// The close code a slow consumer gets (default 1008).
    pub fn slow_consumer_code(mut self, code: CloseCode) -> Self {
        self.config.slow_consumer_code = code;
        self
    }

    /// Close a socket with 1001 when nothing was received for this long.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.socket.idle_timeout = timeout;
        self
    }

    /// Ping a socket after `interval` without input; give it up when nothing answers within
    /// `timeout`.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.config.socket.keepalive_interval = interval;
        self.config.socket.keepalive_timeout = timeout;
        self
    }

    /// How long a closing handshake may take.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.socket.close_timeout = timeout;
        self
    }

    /// Time allowed to send the whole request head.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Largest request head (431 past it) and most headers in it.
    pub fn max_request_head(mut self, bytes: usize, headers: usize) -> Self {
        self.config.max_header_bytes = bytes;
        self.config.max_headers = headers;
        self
    }

    /// Most connections in their opening handshake at once (503 past it).
    pub fn max_pending_handshakes(mut self, n: usize) -> Self {
        self.config.max_pending_handshakes = n;
        self
    }

    /// Most connections at once (503 past it).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// A shared socket with no traffic for this long is closed.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.config.session_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for sockets to close.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Name of the session cookie (default `WSSESSIONID`).
    pub fn session_cookie(mut self, name: &str) -> Self {
        self.config.session_cookie = name.into();
        self
    }

    /// Serves TLS (https and wss on the same port) with the PEM certificate chain and private
    /// key in these files. They are read at [`bind`](ServerBuilder::bind) (an error there
    /// names the file), and again on SIGHUP or when they change (checked every
    /// `tls_reload_interval`): new handshakes get the new certificate, open connections keep
    /// theirs. A file that does not load keeps the certificate in use (logged). ALPN is
    /// `http/1.1`.
    #[cfg(feature = "tls")]
    pub fn tls_pem_files(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls = Some(TlsSource::Files(cert.into(), key.into()));
        self
    }

    /// Serves TLS with this rustls configuration (set its `alpn_protocols` to `http/1.1`, or
    /// leave them empty; reloading certificates is then up to its resolver).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsSource::Config(config));
        self
    }

    /// permessage-deflate (RFC 7692): the policy applied to the clients' offers, or `None`
    /// to refuse every offer. On by default with [`default_deflate`](crate::default_deflate)
    /// (no context kept in either direction: nothing held by idle sockets, broadcasts
    /// compressed once); messages under its `min_size` go plain.
    pub fn deflate(mut self, policy: Option<ws_proto::DeflateConfig>) -> Self {
        self.config.socket.deflate = policy;
        self
    }

    /// How often TLS certificate files are checked for changes (10 s by default).
    pub fn tls_reload_interval(mut self, every: Duration) -> Self {
        self.config.tls_reload_interval = every;
        self
    }

    /// Uses `registry` instead of a new one (to share it, or to create it before the server).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Counts Prometheus metrics and serves them at `GET /metrics` in the text format (off by
    /// default): sockets, handshake failures, messages and bytes per class, close codes,
    /// slow consumers, rooms and, with a cluster, its bus. An axum application can serve
    /// them itself from [`Endpoint::metrics_text`]. Counting costs the echo path no
    /// measurable CPU (each socket counts in counters of its own, summed when scraped).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Turns on the live admin page at `/admin` (off by default), for requests that carry
    /// `token` as `?token=` or `Authorization: Bearer`; others get 401. It shows sockets per
    /// class, room and node, a room's presence, message and byte rates, close codes, slow
    /// consumers and the cluster bus (and counts metrics, as [`metrics`](Self::metrics)
    /// does, without serving `/metrics` unless that is on too).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// Serves `/metrics` and `/admin` (when [`metrics`](Self::metrics) or
    /// [`admin_token`](Self::admin_token) turn them on) on a second listener of their own, plain
    /// HTTP at `addr` (an address inside your network, say `127.0.0.1:9090`), instead of on the
    /// main one, where they then answer like any other unknown page. At most 64 requests are
    /// served at a time, each within `request_timeout`. Bound by [`bind`](Self::bind);
    /// [`build`](Self::build) ignores it (an axum application serves
    /// [`Endpoint::metrics_text`] where it likes).
    pub fn admin_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.admin_addr = Some(addr);
        self
    }

    /// Binds the listener (`127.0.0.1:8080` is the demo's default), with a listen backlog of
    /// 1024 connections waiting to be accepted (the standard library's 128 overflows when
    /// thousands of clients reconnect at once).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let mut failed = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match listen(addr) {
                Ok(listener) => return self.serve_on(listener),
                Err(e) => failed = Some(e),
            }
        }
        Err(failed.unwrap_or_else(|| std::io::Error::other("no address to bind")))
    }

    /// The server without a listener: its classes, pages, registry and limits, to serve
    /// streams you accept yourself or upgrade requests from hyper/axum (see [`Endpoint`]).
    /// Fails only when TLS certificate files do not load.
    pub fn build(self) -> std::io::Result<Endpoint> {
        Ok(Endpoint { shared: self.into_shared(false)? })
    }

    fn serve_on(self, listener: TcpListener) -> std::io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let admin = self.admin_addr.map(listen).transpose()?;
        let shared = self.into_shared(admin.is_some())?;
        Ok(Server { listener, local_addr, shared, admin })
    }

    /// `admin_apart`: `/metrics` and `/admin` have a listener of their own.
    fn into_shared(self, admin_apart: bool) -> std::io::Result<Arc<Shared>> {
        #[cfg(feature = "tls")]
        let (tls, cert_files) = match self.tls {
            None => (None, None),
            Some(TlsSource::Config(config)) => (Some(tokio_rustls::TlsAcceptor::from(config)), None),
            Some(TlsSource::Files(cert, key)) => {
                let files = Arc::new(crate::tls::CertFiles::load(cert, key)?);
                (Some(tokio_rustls::TlsAcceptor::from(files.server_config())), Some(files))
            }
        };
        let slots = Slots::new(self.config.max_connections, self.config.max_pending_handshakes);
        let registry = self.registry.unwrap_or_default();
        let metrics = (self.metrics || self.admin_token.is_some()).then(|| {
            let classes = self.classes.values().chain(self.routes.values()).map(|r| r.name.clone());
            crate::metrics::Metrics::new(classes, registry.clone(), self.metrics, self.admin_token)
        });
        let shared = Arc::new(Shared {
            socket_config: Arc::new(self.config.socket.clone()),
            config: self.config,
            classes: self.classes,
            routes: self.routes,
            pages: self.pages,
            origins: self.origins,
            registry,
            stop: CancellationToken::new(),
            slots,
            refusing: AtomicUsize::new(0),
            metrics,
            admin_apart,
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            cert_files,
        });
        Ok(shared)
    }
}

/// Connections the kernel queues for `accept`.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
