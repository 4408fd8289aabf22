//! The listener: HTTP/1.1 under hard limits, static pages, class-from-URL routing, the
//! per-connection lifecycle and graceful shutdown.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Notify;
use ws_proto::{CloseCode, Role, httparse};
use ws_session::WebSocket;

use crate::class::{PostServer, PreServer, Reject, WebSocketServer};
use crate::id::{is_session_id, new_session_id};
use crate::mailbox::{Mailbox, refuse_all};
use crate::registry::SocketInfo;
use crate::request::{HeadError, HeadLimits, Request, read_head};
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
        }
    }
}

/// Which `Origin`s may open sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin, and requests without one.
    #[default]
    Any,
    /// Only these origins (exact, case-insensitive, e.g. `http://127.0.0.1:8080`);
    /// others, and requests without an Origin, get 403.
    AllowList(Vec<String>),
}

impl OriginPolicy {
    fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) => true,
            (OriginPolicy::AllowList(list), Some(o)) => list.iter().any(|a| a.eq_ignore_ascii_case(o)),
            (OriginPolicy::AllowList(_), None) => false,
        }
    }
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

    /// Uses `registry` instead of a new one (to share it, or to create it before the server).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Binds the listener (`127.0.0.1:8080` is the demo's default).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            socket_config: Arc::new(self.config.socket.clone()),
            config: self.config,
            classes: self.classes,
            routes: self.routes,
            pages: self.pages,
            origins: self.origins,
            registry: self.registry.unwrap_or_default(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
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
    stopping: AtomicBool,
    stop: Notify,
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

    /// Accepts connections, one task each, until shut down.
    pub async fn run(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "listening");
        loop {
            if self.shared.stopping.load(Ordering::Acquire) {
                break;
            }
            let stop = self.shared.stop.notified();
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(handle_connection(stream, peer, self.shared.clone()));
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stop => break,
            }
        }
        tracing::info!("stopped accepting");
        Ok(())
    }
}

/// Stops a server: no more connections, every socket closed with 1001, a bounded wait.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting, asks every socket to close with 1001 ("going away"), and waits until
    /// they have closed or `shutdown_timeout` has passed. Returns the number of sockets still
    /// open when it gave up waiting.
    pub async fn shutdown(&self) -> usize {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.stop.notify_waiters();
        let registry = &self.shared.registry;
        registry.close_all(CloseCode::GOING_AWAY, "server shutting down");
        let _ = tokio::time::timeout(self.shared.config.shutdown_timeout, registry.wait_empty()).await;
        registry.len()
    }
}

/// Answers with an HTTP error and closes; the connection ends there (`None`).
async fn respond<T>(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &str) -> Option<T> {
    let mut out = Vec::with_capacity(256 + body.len());
    ws_proto::write_error_response(&mut out, status, headers, body);
    let _ = stream.write_all(&out).await;
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
async fn handle_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    // The socket gets a task of its own, so the handshake's state (request buffer, headers,
    // parsed request, the stream and peer address it started from) is not carried for the
    // socket's whole life: an idle socket's task holds only what the socket needs.
    if let Some(accepted) = handshake(stream, peer, &shared).await {
        tokio::spawn(run_socket(accepted, shared));
    }
}

/// Reads and answers the request: a page, an error, or (after `on_pre_server`) the 101.
async fn handshake(mut stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> Option<Accepted> {
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let limits = HeadLimits {
        max_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        timeout: config.request_timeout,
    };
    let mut buf = BytesMut::with_capacity(1024);
    let head_len = match read_head(&mut stream, &mut buf, limits).await {
        Ok(n) => n,
        Err(HeadError::TooLarge) => {
            return respond(&mut stream, 431, &[], "request header too large\n").await;
        }
        Err(HeadError::Malformed) => return respond(&mut stream, 400, &[], "malformed request\n").await,
        Err(HeadError::Timeout) => {
            tracing::debug!(%peer, "request not received in time: dropped");
            return respond(&mut stream, 408, &[], "request timeout\n").await;
        }
        Err(HeadError::Closed) => return None,
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    if parsed.parse(&buf[..head_len]).is_err() {
        return respond(&mut stream, 400, &[], "malformed request\n").await;
    }
    let request = Request::from_parsed(&parsed, Some(peer));
    let cookie_session =
        request.cookie(&config.session_cookie).filter(|s| is_session_id(s)).map(str::to_string);
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
        Err(e) => {
            let mut out = Vec::new();
            e.write_response(&mut out);
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            return None;
        }
    };
    if !shared.origins.allows(request.origin()) {
        tracing::info!(origin = ?request.origin(), "origin refused");
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
    let conn =
        Connection::dedicated(id, session_id, shared.registry.clone(), ws, Arc::new(Mailbox::default()));
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
fn run_socket(mut accepted: Accepted, shared: Arc<Shared>) -> impl Future<Output = ()> {
    async move {
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
    let handle = SharedHandle::local(id, mailbox.clone(), state.clone());
    let mut conn = Connection::shared(id, session_id.clone(), registry.clone(), handle);
    let driver = crate::shared::run(*ws, mailbox, state.clone(), shared.config.session_timeout);
    let (_, outcome) = tokio::join!(driver, CatchUnwind(instance.server(&mut conn)));
    Box::pin(registry.remove(&id)).await;
    let close = state.ended().unwrap_or((CloseCode::ABNORMAL, String::new()));
    Ending { outcome, close, id, session_id }
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
    let (error, panicked) = match outcome {
        Ok(Ok(())) => (None, false),
        Ok(Err(e)) => (Some(e.to_string()), false),
        Err(panic) => {
            let message = panic_message(&panic);
            tracing::error!(web_socket_id = %id, class = %class, panic = %message, "server panicked");
            (Some(message), true)
        }
    };
    tracing::info!(web_socket_id = %id, class = %class, code = %close.0, reason = %close.1, "connection closed");
    let post =
        PostServer { web_socket_id: id, session_id, shared: is_shared, close, error, panicked, registry };
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
        let list = OriginPolicy::AllowList(vec!["http://127.0.0.1:8080".into()]);
        assert!(list.allows(Some("HTTP://127.0.0.1:8080")));
        assert!(!list.allows(Some("http://evil.example")));
        assert!(!list.allows(None));
        assert!(OriginPolicy::Any.allows(None));
    }
}
