//! The listener: HTTP/1.1 under hard limits, static pages, class-from-URL routing, the
//! per-connection lifecycle and graceful shutdown.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use ws_proto::{CloseCode, HandshakeError, HeadLimits, Role, httparse};
use ws_session::WebSocket;
use ws_session::server_support::read_request_head;

use crate::class::{PostServer, PreServer, Reject, WebSocketServer};
use crate::id::{is_session_id, new_session_id};
use crate::mailbox::{Mailbox, refuse_all};
use crate::registry::SocketInfo;
use crate::request::Request;
use crate::shared::SharedState;
use crate::{Connection, Registry, SharedHandle, WebSocketId};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Settings of every WebSocket (limits, close and keepalive timeouts).
    pub socket: ws_session::Config,
    /// Largest request head; larger ones are answered 431.
    pub max_header_bytes: usize,
    /// Most headers in a request; more are answered 431.
    pub max_headers: usize,
    /// Time allowed to send the whole request head; slower clients are dropped.
    pub request_timeout: Duration,
    /// A shared socket with no traffic for this long is closed (IRIS session timeout).
    pub session_timeout: Duration,
    /// On shutdown, how long sockets get to finish their closing handshakes.
    pub shutdown_timeout: Duration,
    /// Name of the session cookie.
    pub session_cookie: String,
    /// Most bytes of frames other tasks push to one socket (broadcasts, room messages) that
    /// may wait for it, in its mailbox and in its output together. A socket past it is a slow
    /// consumer: its queue is freed and it is closed with a Close frame
    /// (`slow_consumer_code`, reason `slow consumer`). One frame is always taken when nothing
    /// waits, however large.
    pub max_queued_bytes: usize,
    /// The close code a slow consumer gets (1008, policy violation, by default).
    pub slow_consumer_code: CloseCode,
    /// Most connections still in their opening handshake at once; more are answered 503.
    pub max_pending_handshakes: usize,
    /// Most connections at once (handshakes and sockets); more are answered 503.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            socket: ws_session::Config::default(),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            request_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(900),
            shutdown_timeout: Duration::from_secs(5),
            session_cookie: "WSSESSIONID".into(),
            max_queued_bytes: 1 << 20,
            slow_consumer_code: CloseCode::POLICY,
            max_pending_handshakes: 1024,
            max_connections: 100_000,
        }
    }
}

/// Which `Origin`s may open sockets (a defence against cross-site WebSocket hijacking: a
/// page on another site opening a socket with the user's cookies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// The default: a request with an `Origin` (every browser sends one) is accepted only
    /// when that origin's host and port are the `Host` the request was sent to; requests
    /// without an `Origin` (programs, not browsers) are accepted. Others get 403. Behind a
    /// proxy that rewrites `Host`, use an allow-list.
    #[default]
    SameHost,
    /// Any origin, and requests without one: an explicit opt-out.
    Any,
    /// Only these origins (exact, case-insensitive, e.g. `http://127.0.0.1:8080`);
    /// others, and requests without an Origin, get 403.
    AllowList(Vec<String>),
}

impl OriginPolicy {
    fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) | (OriginPolicy::SameHost, None) => true,
            (OriginPolicy::SameHost, Some(o)) => host.is_some_and(|h| same_host(o, h)),
            (OriginPolicy::AllowList(list), Some(o)) => list.iter().any(|a| a.eq_ignore_ascii_case(o)),
            (OriginPolicy::AllowList(_), None) => false,
        }
    }
}

/// Is `origin` (`scheme://host[:port]`) the same host and port as the `Host` header? A
/// missing port is the scheme's default on both sides.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return false,
    };
    let split = |a: &str| -> (String, String) {
        let a = a.trim().trim_end_matches('/');
        // An IPv6 literal keeps its colons inside brackets.
        match a.rfind(':').filter(|&i| !a[i..].contains(']')) {
            Some(i) => (a[..i].to_ascii_lowercase(), a[i + 1..].to_string()),
            None => (a.to_ascii_lowercase(), default_port.to_string()),
        }
    };
    let (o_host, o_port) = split(authority);
    let (h_host, h_port) = split(host);
    !o_host.is_empty() && o_host == h_host && o_port == h_port
}

type Factory = Arc<dyn Fn() -> Box<dyn WebSocketServer> + Send + Sync>;

#[derive(Clone)]
struct Route {
    name: Arc<str>,
    factory: Factory,
}

#[derive(Clone)]
struct Page {
    content_type: String,
    body: Bytes,
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

    /// Largest message accepted (all fragments together); larger ones are closed with 1009.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.socket.protocol.max_message_size = bytes;
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

    /// Uses `registry` instead of a new one (to share it, or to create it before the server).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Binds the listener (`127.0.0.1:8080` is the demo's default).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let permits = |n: usize| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
        let pending = permits(self.config.max_pending_handshakes);
        let connections = permits(self.config.max_connections);
        let shared = Arc::new(Shared {
            socket_config: Arc::new(self.config.socket.clone()),
            config: self.config,
            classes: self.classes,
            routes: self.routes,
            pages: self.pages,
            origins: self.origins,
            registry: self.registry.unwrap_or_default(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            pending,
            connections,
            refusing: AtomicUsize::new(0),
        });
        Ok(Server { listener, local_addr, shared })
    }
}

struct Shared {
    config: ServerConfig,
    /// `config.socket`, shared by every socket rather than copied into each.
    socket_config: Arc<ws_session::Config>,
    classes: HashMap<(String, String), Route>,
    routes: HashMap<String, Route>,
    pages: HashMap<String, Page>,
    origins: OriginPolicy,
    registry: Registry,
    /// Cancelled when shutdown begins.
    stop: CancellationToken,
    /// Every connection's task (handshake, socket, `on_post_server`): shutdown waits for
    /// them.
    tasks: TaskTracker,
    /// Permits for connections in their handshake, and for connections at all.
    pending: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    /// Connections being answered 503 right now (the answer lingers briefly).
    refusing: AtomicUsize,
}

/// A bound WebSocket server. [`run`](Server::run) serves until
/// [`ShutdownHandle::shutdown`] is called.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
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

    /// Its registry of sockets.
    pub fn registry(&self) -> Registry {
        self.shared.registry.clone()
    }

    /// A handle that stops the server gracefully from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { shared: self.shared.clone() }
    }

    /// Accepts connections, one task each, until shut down by a [`ShutdownHandle`]; returns
    /// once it stopped accepting (the sockets are still closing then: see
    /// [`run_until`](Server::run_until) for a server that returns when they are gone).
    pub async fn run(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "listening");
        let shared = &self.shared;
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
    shared: Arc<Shared>,
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
        shared.tasks.close();
        let _ = tokio::time::timeout(shared.config.shutdown_timeout, shared.tasks.wait()).await;
        shared.tasks.len()
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
const SHUTTING_DOWN: &str = "server shutting down";

/// An accepted connection: its task, or a quick 503 when the server is at a limit.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let permits = shared.connections.clone().try_acquire_owned().ok().and_then(|connection| {
        let handshake = shared.pending.clone().try_acquire_owned().ok()?;
        Some((connection, handshake))
    });
    match permits {
        Some(permits) => {
            shared.tasks.spawn(handle_connection(stream, peer, shared.clone(), permits));
        }
        None => refuse_busy(stream, shared),
    }
}

/// Answers 503 to a connection over a limit, without reading its request. The answer
/// lingers a moment (so unread input does not turn the close into a reset that destroys the
/// 503), for at most 256 connections at a time; past that they are simply closed.
fn refuse_busy(stream: TcpStream, shared: &Arc<Shared>) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver busy\n";
    let _ = stream.set_nodelay(true);
    if stream.try_write(BUSY).is_err() {
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

/// Answers with an HTTP error and closes; the connection ends there (`None`).
async fn respond<T>(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &str) -> Option<T> {
    let mut out = Vec::with_capacity(256 + body.len());
    ws_proto::write_error_response(&mut out, status, headers, body);
    send_and_close(stream, &out).await
}

/// Answers a request the handshake refuses (400, 405, 426, 431: ws-proto's answer).
async fn refuse<T>(stream: &mut TcpStream, error: &HandshakeError) -> Option<T> {
    let mut out = Vec::with_capacity(256);
    error.write_response(&mut out);
    send_and_close(stream, &out).await
}

async fn send_and_close<T>(stream: &mut TcpStream, bytes: &[u8]) -> Option<T> {
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    None
}

fn session_cookie(name: &str, id: &str) -> String {
    format!("{name}={id}; Path=/; HttpOnly; SameSite=Lax")
}

/// `/csp/<app>/<Class>.cls` -> (`app`, `Class`).
fn class_from_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/csp/")?;
    let (app, file) = rest.rsplit_once('/')?;
    let class = file.strip_suffix(".cls")?;
    (!app.is_empty() && !class.is_empty()).then_some((app, class))
}

/// What the handshake hands over to the live socket: only what the socket needs from then
/// on (the request, its buffers and headers are freed with the handshake's future).
struct Accepted {
    /// The socket as its `server` sees it (a dedicated one; `run_shared` takes a shared
    /// one's apart). It carries the ids, so the task holds them once.
    conn: Connection,
    instance: Box<dyn WebSocketServer>,
    class: Arc<str>,
    shared: bool,
}

/// A new TCP connection's task: the handshake, then (for a WebSocket) the socket's own task.
/// `permits` hold its places under `max_connections` (for its whole life) and
/// `max_pending_handshakes` (until its handshake ends).
async fn handle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) {
    let (connection, pending) = permits;
    // Until the head is complete the task holds only the stream and a small buffer: a
    // client that sends its request slowly (or never) costs little memory.
    let mut buf = BytesMut::new();
    let limits =
        HeadLimits { max_bytes: shared.config.max_header_bytes, max_headers: shared.config.max_headers };
    let reading = read_request_head(&mut stream, &mut buf, limits);
    let head = tokio::select! {
        head = tokio::time::timeout(shared.config.request_timeout, reading) => Some(head),
        _ = shared.stop.cancelled() => None,
    };
    // The rest runs boxed, so its state is allocated only once the head has arrived; and the
    // socket gets a task of its own, so the handshake's state is not carried for the
    // socket's whole life: an idle socket's task holds only what the socket needs.
    let accepted = match head {
        None => {
            respond::<()>(&mut stream, 503, &[("Retry-After", "1")], "server shutting down\n").await;
            None
        }
        Some(head) => Box::pin(handshake(stream, buf, head, peer, &shared)).await,
    };
    drop(pending);
    if let Some(accepted) = accepted {
        let tasks = shared.tasks.clone();
        tasks.spawn(run_socket(accepted, shared, connection));
    }
}

/// Answers the request whose head is in `buf`: a page, an error, or (after `on_pre_server`)
/// the 101.
async fn handshake(
    mut stream: TcpStream,
    buf: BytesMut,
    head: Result<Result<usize, ws_session::Error>, tokio::time::error::Elapsed>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<Accepted> {
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let head_len = match head {
        Ok(Ok(n)) => n,
        Ok(Err(ws_session::Error::Handshake(e))) => return refuse(&mut stream, &e).await,
        Ok(Err(_)) => return None, // the client went away
        Err(_) => {
            tracing::debug!(%peer, "request not received in time: dropped");
            return respond(&mut stream, 408, &[], "request timeout\n").await;
        }
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    if parsed.parse(&buf[..head_len]).is_err() {
        return respond(&mut stream, 400, &[], "malformed request\n").await;
    }
    let request = Request::from_parsed(&parsed, Some(peer));
    let cookie_session = request.cookie(&config.session_cookie).filter(|s| is_session_id(s));
    let new_session = cookie_session.is_none();
    let session_id: Arc<str> = cookie_session.unwrap_or_else(new_session_id).into();
    let set_cookie = session_cookie(&config.session_cookie, &session_id);
    let cookie_header: &[(&str, &str)] =
        if new_session { &[("Set-Cookie", set_cookie.as_str())] } else { &[] };

    if !request.is_upgrade() {
        serve_page(&mut stream, shared, &request, cookie_header).await;
        return None;
    }
    let route = match class_from_path(&request.path) {
        Some((app, class)) => shared.classes.get(&(app.to_string(), class.to_string())),
        None => shared.routes.get(&request.path),
    };
    let Some(route) = route.cloned() else {
        return respond(&mut stream, 404, &[], "no WebSocket class here\n").await;
    };
    let key = match ws_proto::validate_request(&parsed) {
        Ok(valid) => valid.key.to_vec(),
        Err(e) => return refuse(&mut stream, &e).await,
    };
    if !shared.origins.allows(request.origin(), request.header("Host")) {
        tracing::info!(origin = ?request.origin(), host = ?request.header("Host"), "origin refused");
        return respond(&mut stream, 403, &[], "origin not allowed\n").await;
    }
    drop(headers); // ends the borrow of `buf` by the parsed request
    // Keep only what follows the request (usually nothing), not the handshake buffer.
    let leftover = if buf.len() > head_len { BytesMut::from(&buf[head_len..]) } else { BytesMut::new() };
    drop(buf);

    let id = WebSocketId::new();
    let mut instance = (route.factory)();
    let offered: Vec<String> = request.protocols().into_iter().map(String::from).collect();
    let mut pre = PreServer {
        request,
        web_socket_id: id,
        session_id: session_id.clone(),
        registry: shared.registry.clone(),
        shared: false,
        protocol: None,
    };
    match CatchUnwind(instance.on_pre_server(&mut pre)).await {
        Ok(Ok(())) => {}
        Ok(Err(Reject { status, body })) => return respond(&mut stream, status, &[], &body).await,
        Err(panic) => {
            tracing::error!(class = %route.name, panic = panic_message(&panic), "on_pre_server panicked");
            return respond(&mut stream, 500, &[], "internal error\n").await;
        }
    }
    let protocol = pre.protocol.take().filter(|p| {
        let ok = offered.iter().any(|o| o == p);
        if !ok {
            tracing::warn!(protocol = %p, "on_pre_server chose a subprotocol the client did not offer: ignored");
        }
        ok
    });
    if shared.stop.is_cancelled() {
        return respond(&mut stream, 503, &[("Retry-After", "1")], "server shutting down\n").await;
    }
    let mut response = Vec::with_capacity(256);
    ws_proto::write_accept_response(&mut response, &key, protocol.as_deref(), cookie_header);
    stream.write_all(&response).await.ok()?;
    let ws = Box::new(WebSocket::from_upgraded(
        stream,
        Role::Server,
        shared.socket_config.clone(),
        leftover,
        protocol,
    ));
    let mailbox = Arc::new(Mailbox::new(config.max_queued_bytes, config.slow_consumer_code));
    let conn = Connection::dedicated(id, session_id, shared.registry.clone(), ws, mailbox);
    Some(Accepted { conn, instance, class: route.name.clone(), shared: pre.shared })
}

async fn serve_page(
    stream: &mut TcpStream,
    shared: &Shared,
    request: &Request,
    cookie_header: &[(&str, &str)],
) {
    let Some(page) = shared.pages.get(&request.path) else {
        return respond::<()>(stream, 404, &[], "not found\n").await.unwrap_or(());
    };
    if request.method != "GET" && request.method != "HEAD" {
        return respond::<()>(stream, 405, &[("Allow", "GET, HEAD")], "method not allowed\n")
            .await
            .unwrap_or(());
    }
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n",
        page.content_type,
        page.body.len()
    );
    for (name, value) in cookie_header {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    if request.method == "GET" {
        let _ = stream.write_all(&page.body).await;
    }
    let _ = stream.shutdown().await;
}

/// The live socket: `server`, then the close, then `on_post_server`. (The fields of
/// `accepted` are used in place rather than moved into locals: each local would take room
/// of its own in this task, next to the argument, for the socket's whole life.)
#[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
fn run_socket(
    mut accepted: Accepted,
    shared: Arc<Shared>,
    connection: OwnedSemaphorePermit,
) -> impl Future<Output = ()> {
    async move {
        let _connection = connection;
        let info = SocketInfo {
            id: accepted.conn.web_socket_id(),
            class: accepted.class.clone(),
            session_id: accepted.conn.session_id_arc().clone(),
            shared: accepted.shared,
        };
        tracing::info!(web_socket_id = %info.id, class = %info.class, shared = info.shared, "connection opened");
        let ending = if accepted.shared {
            // Boxed: a dedicated socket's task does not carry the shared machinery's state.
            Box::pin(run_shared(&mut accepted.instance, info, accepted.conn, &shared)).await
        } else {
            let mailbox = accepted.conn.mailbox().cloned().expect("a dedicated socket has a mailbox");
            Box::pin(shared.registry.insert(info, mailbox, None)).await;
            close_if_stopping(&shared, &accepted.conn.web_socket_id());
            let outcome = CatchUnwind(accepted.instance.server(&mut accepted.conn)).await;
            // The ending runs in its own boxed future: it does not enlarge the idle task.
            let conn = &mut accepted.conn;
            Box::pin(async move {
                if !conn.is_closed() {
                    let _ = conn.end_server().await;
                }
                conn.registry().remove(&conn.web_socket_id()).await;
                let close = conn.close_info().unwrap_or((CloseCode::ABNORMAL, String::new()));
                if let Some(mailbox) = conn.mailbox() {
                    refuse_all(mailbox.close(), close.0, &close.1);
                }
                Ending { outcome, close, id: conn.web_socket_id(), session_id: conn.session_id_arc().clone() }
            })
            .await
        };
        Box::pin(finish(accepted.instance, ending, accepted.class, accepted.shared, shared.registry.clone()))
            .await;
    }
}

/// A shared socket's life: its driver task and `server` side by side.
async fn run_shared(
    instance: &mut Box<dyn WebSocketServer>,
    info: SocketInfo,
    dedicated: Connection,
    shared: &Shared,
) -> Ending {
    let (id, session_id, registry, ws, mailbox) = dedicated.into_dedicated_parts().expect("made dedicated");
    let state = Arc::new(SharedState::default());
    Box::pin(registry.insert(info, mailbox.clone(), Some(state.clone()))).await;
    close_if_stopping(shared, &id);
    let handle = SharedHandle::local(id, mailbox.clone(), state.clone());
    let mut conn = Connection::shared(id, session_id.clone(), registry.clone(), handle);
    let driver =
        crate::shared::run(*ws, mailbox, state.clone(), shared.config.session_timeout, registry.clone(), id);
    let (_, outcome) = tokio::join!(driver, CatchUnwind(instance.server(&mut conn)));
    Box::pin(registry.remove(&id)).await;
    let close = state.ended().unwrap_or((CloseCode::ABNORMAL, String::new()));
    Ending { outcome, close, id, session_id }
}

/// A socket registered after shutdown's `close_all` looked is closed here (shutdown cancels
/// before it closes, so one of the two sees the other).
fn close_if_stopping(shared: &Shared, id: &WebSocketId) {
    if shared.stop.is_cancelled() {
        shared.registry.close(id, CloseCode::GOING_AWAY, SHUTTING_DOWN);
    }
}

/// How a socket's `server` ended, for `on_post_server`.
struct Ending {
    outcome: Result<Result<(), ws_session::Error>, Box<dyn Any + Send>>,
    close: (CloseCode, String),
    id: WebSocketId,
    session_id: Arc<str>,
}

async fn finish(
    mut instance: Box<dyn WebSocketServer>,
    ending: Ending,
    class: Arc<str>,
    is_shared: bool,
    registry: Registry,
) {
    let Ending { outcome, close, id, session_id } = ending;
    let (error, panic) = match outcome {
        Ok(Ok(())) => (None, None),
        Ok(Err(e)) if e.is_normal_close() => (None, None),
        Ok(Err(e)) => {
            tracing::warn!(web_socket_id = %id, class = %class, error = %e, "server returned an error");
            (Some(Arc::new(e)), None)
        }
        Err(panic) => {
            let message = panic_message(&panic);
            tracing::error!(web_socket_id = %id, class = %class, panic = %message, "server panicked");
            (None, Some(message))
        }
    };
    tracing::info!(web_socket_id = %id, class = %class, code = %close.0, reason = %close.1, "connection closed");
    let post = PostServer { web_socket_id: id, session_id, shared: is_shared, close, error, panic, registry };
    if let Err(panic) = CatchUnwind(instance.on_post_server(&post)).await {
        tracing::error!(web_socket_id = %id, panic = panic_message(&panic), "on_post_server panicked");
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Polls a future, turning a panic inside it into an `Err` (the boxed futures of
/// `async_trait` are `Unpin`, so no unsafe pinning is needed).
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_paths() {
        assert_eq!(
            class_from_path("/csp/user/MyApp.MyWebSocketServer.cls"),
            Some(("user", "MyApp.MyWebSocketServer"))
        );
        assert_eq!(class_from_path("/csp/a/b/Chat.Server.cls"), Some(("a/b", "Chat.Server")));
        assert_eq!(class_from_path("/csp/user/.cls"), None);
        assert_eq!(class_from_path("/echo"), None);
        assert_eq!(class_from_path("/csp/X.cls"), None);
    }

    #[test]
    fn origin_policy() {
        let host = Some("127.0.0.1:8080");
        let list = OriginPolicy::AllowList(vec!["http://127.0.0.1:8080".into()]);
        assert!(list.allows(Some("HTTP://127.0.0.1:8080"), host));
        assert!(!list.allows(Some("http://evil.example"), host));
        assert!(!list.allows(None, host));
        assert!(OriginPolicy::Any.allows(None, host));
        assert!(OriginPolicy::Any.allows(Some("http://evil.example"), host));
        // The default: same host, or no Origin at all.
        let same = OriginPolicy::default();
        assert_eq!(same, OriginPolicy::SameHost);
        assert!(same.allows(None, host));
        assert!(same.allows(Some("http://127.0.0.1:8080"), host));
        assert!(!same.allows(Some("http://evil.example"), host));
        assert!(!same.allows(Some("http://127.0.0.1:8081"), host));
        assert!(!same.allows(Some("null"), host));
        assert!(!same.allows(Some("http://127.0.0.1:8080"), None));
    }

    #[test]
    fn same_host_ports_and_case() {
        assert!(same_host("https://Example.COM", "example.com:443"));
        assert!(same_host("http://example.com", "example.com"));
        assert!(same_host("http://example.com:80", "example.com"));
        assert!(same_host("https://example.com", "example.com"), "a Host without a port: the default");
        assert!(!same_host("https://example.com", "example.com:80"));
        assert!(!same_host("http://example.com.evil.net", "example.com"));
        assert!(!same_host("http://evil.net/example.com", "example.com"));
        assert!(same_host("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_host("http://[::1]", "[::1]:8080"));
        assert!(!same_host("file://", "example.com"));
        assert!(!same_host("http://", ""));
    }
}
