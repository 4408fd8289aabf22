//! The server class: `on_pre_server`, `server`, `on_post_server`.

use std::sync::Arc;

use async_trait::async_trait;
use ws_proto::CloseCode;
use ws_session::Error;

use crate::{Connection, Registry, Request, WebSocketId};

/// A WebSocket server class (IRIS: a subclass of `%CSP.WebSocket`). The server builds a fresh
/// instance per connection with the factory its route holds, then calls:
///
/// 1. [`on_pre_server`](WebSocketServer::on_pre_server) before the `101` answer: accept or
///    reject, choose the subprotocol, make the socket shared;
/// 2. [`server`](WebSocketServer::server), the conversation;
/// 3. [`on_post_server`](WebSocketServer::on_post_server), exactly once after the socket is
///    done, however it ended (closed by either side, vanished, error, or a panic in
///    `server`, which is caught and logged).
///
/// ```
/// use std::time::Duration;
/// use ws_server::{Connection, WebSocketServer, async_trait};
///
/// struct Echo;
///
/// #[async_trait]
/// impl WebSocketServer for Echo {
///     async fn server(&mut self, ws: &mut Connection) -> Result<(), ws_server::Error> {
///         loop {
///             let data = ws.read(32656, Duration::from_secs(10)).await?;
///             ws.write_message(&data).await?;
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait WebSocketServer: Send + 'static {
    /// Runs before the handshake is answered. Return `Err(Reject)` to refuse with an HTTP
    /// status. The default accepts.
    async fn on_pre_server(&mut self, _pre: &mut PreServer) -> Result<(), Reject> {
        Ok(())
    }

    /// The conversation with the client. For a dedicated socket, returning closes it (with
    /// 1000 if still open); a shared socket stays open for `open_server` users.
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error>;

    /// Runs once after the socket is closed.
    async fn on_post_server(&mut self, _post: &PostServer) {}
}

/// What `on_pre_server` sees and may decide.
#[derive(Debug)]
pub struct PreServer {
    pub(crate) request: Request,
    pub(crate) web_socket_id: WebSocketId,
    pub(crate) session_id: Arc<str>,
    pub(crate) registry: Registry,
    pub(crate) shared: bool,
    pub(crate) protocol: Option<String>,
}

impl PreServer {
    /// The upgrade request: path, query parameters, headers, cookies, Origin, offered
    /// subprotocols.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A query parameter of the request (e.g. `room`).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.request.query_param(name)
    }

    /// The id the socket will have.
    pub fn web_socket_id(&self) -> WebSocketId {
        self.web_socket_id
    }

    /// The hosting session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The server's registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// IRIS `SharedConnection`: make the socket reachable by `open_server` from any task and
    /// let `server` return without closing it. Only settable here.
    pub fn set_shared_connection(&mut self, shared: bool) {
        self.shared = shared;
    }

    /// Is the socket going to be shared?
    pub fn shared_connection(&self) -> bool {
        self.shared
    }

    /// Chooses the subprotocol; it must be one the client offered (another is ignored with
    /// a warning, since the client would fail the connection).
    pub fn set_protocol(&mut self, protocol: &str) {
        self.protocol = Some(protocol.to_string());
    }

    /// The chosen subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

/// A refusal from `on_pre_server`: the HTTP status (and body) the client gets instead of 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// HTTP status, e.g. 403.
    pub status: u16,
    /// A short text body.
    pub body: String,
}

impl Reject {
    /// A refusal with `status` and a body naming it.
    pub fn new(status: u16) -> Self {
        let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        Reject { status, body: format!("{status} {reason}\n") }
    }

    /// 403 Forbidden.
    pub fn forbidden() -> Self {
        Self::new(403)
    }
}

/// What `on_post_server` learns about the finished socket.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostServer {
    /// The socket's id.
    pub web_socket_id: WebSocketId,
    /// The hosting session's id.
    pub session_id: Arc<str>,
    /// Was it shared?
    pub shared: bool,
    /// The close code and reason it ended with (1006 if it died without a Close).
    pub close: (CloseCode, String),
    /// The error `server` returned, if it was one: a normal close (1000 or 1001 from either
    /// side, see [`Error::is_normal_close`]) is how a conversation ends, and is `None` here.
    pub error: Option<Arc<Error>>,
    /// The panic message, if `server` panicked (it is caught and logged).
    pub panic: Option<String>,
    /// The server's registry (the socket is already out of it).
    pub registry: Registry,
}
