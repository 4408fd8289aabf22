//! One connection's opening: the request head under the limits, pages, routing, Origin,
//! `on_pre_server`, and the 101. The checks ([`decide`]) are the same whether the request
//! came over the server's own listener (any stream, TLS included) or from hyper/axum.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use ws_proto::{HandshakeError, HeadLimits, Role, httparse};
use ws_session::server_support::read_request_head;
use ws_session::{Transport, WebSocket};

use crate::class::{PreServer, Reject, WebSocketServer};
use crate::id::{is_session_id, new_session_id};
use crate::lifecycle::{catch_unwind, panic_message, run_socket};
use crate::mailbox::Mailbox;
use crate::request::Request;
use crate::server::Shared;
use crate::slot::{Pending, Slot};
use crate::{Connection, WebSocketId};

/// An HTTP answer other than the 101: an error, or one of the server's pages.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) content_type: Cow<'static, str>,
    pub(crate) body: Bytes,
    /// A HEAD request: the head only.
    pub(crate) head_only: bool,
}

impl Answer {
    pub(crate) fn text(status: u16, body: &'static str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            content_type: Cow::Borrowed("text/plain; charset=utf-8"),
            body: Bytes::from_static(body.as_bytes()),
            head_only: false,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn busy() -> Answer {
        Answer::text(503, "server shutting down\n").header("Retry-After", "1")
    }

    /// ws-proto's answer to a request the handshake refuses (400, 405, 426, 431).
    pub(crate) fn refused(error: &HandshakeError) -> Answer {
        let mut answer = Answer::text(error.status(), "");
        answer.body = Bytes::from(format!("{error}\n"));
        match error {
            HandshakeError::Version => {
                answer.header("Sec-WebSocket-Version", "13").header("Upgrade", "websocket")
            }
            HandshakeError::Method => answer.header("Allow", "GET"),
            _ => answer,
        }
    }

    /// The answer as HTTP/1.1 bytes, closing the connection.
    fn to_http1(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        let reason = http::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason());
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason.unwrap_or("Error"));
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(
            head,
            "Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.content_type,
            self.body.len()
        );
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Writes `answer` and closes; the connection ends there (`None`).
pub(crate) async fn respond<S, T>(stream: &mut S, answer: Answer) -> Option<T>
where
    S: AsyncWrite + Unpin,
{
    let _ = stream.write_all(&answer.to_http1()).await;
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
pub(crate) struct Accepted {
    /// The socket as its `server` sees it (a dedicated one; `run_shared` takes a shared
    /// one's apart). It carries the ids, so the task holds them once.
    pub(crate) conn: Connection,
    pub(crate) instance: Box<dyn WebSocketServer>,
    pub(crate) class: Arc<str>,
    pub(crate) shared: bool,
}

/// A request the checks accepted: the 101 to send, and what the socket is built from once
/// the stream is ready.
pub(crate) struct Upgrade {
    /// The client's `Sec-WebSocket-Key`.
    pub(crate) key: Vec<u8>,
    pub(crate) protocol: Option<String>,
    pub(crate) set_cookie: Option<String>,
    /// permessage-deflate as agreed: the parameters and the `Sec-WebSocket-Extensions` value.
    pub(crate) deflate: Option<ws_proto::DeflateAgreement>,
    id: WebSocketId,
    session_id: Arc<str>,
    instance: Box<dyn WebSocketServer>,
    class: Arc<str>,
    shared: bool,
}

impl Upgrade {
    /// The socket over `stream` (after the 101), ready for its task.
    pub(crate) fn into_accepted(self, stream: Transport, leftover: BytesMut, shared: &Shared) -> Accepted {
        let mut ws = Box::new(WebSocket::from_upgraded(
            stream,
            Role::Server,
            shared.socket_config.clone(),
            leftover,
            self.protocol,
        ));
        if let Some(agreed) = self.deflate {
            ws.set_deflate(agreed.params);
        }
        let mailbox =
            Arc::new(Mailbox::new(shared.config.max_queued_bytes, shared.config.slow_consumer_code));
        let conn = Connection::dedicated(self.id, self.session_id, shared.registry.clone(), ws, mailbox)
            .with_meter(shared.metrics.as_ref().and_then(|m| m.open(&self.class)));
        Accepted { conn, instance: self.instance, class: self.class, shared: self.shared }
    }
}

/// The checks every upgrade request goes through, whichever way it came: a page for a plain
/// request, routing, ws-proto's validation, Origin, `on_pre_server` and its subprotocol.
/// An upgrade request refused here counts as a handshake failure (by the status answered).
pub(crate) async fn decide(
    shared: &Shared,
    parsed: &httparse::Request<'_, '_>,
    request: Request,
) -> Result<Upgrade, Answer> {
    let is_upgrade = request.is_upgrade();
    let decided = checks(shared, parsed, request).await;
    if let (true, Err(answer)) = (is_upgrade, &decided) {
        crate::metrics::handshake_failed(shared, answer.status);
    }
    decided
}

async fn checks(
    shared: &Shared,
    parsed: &httparse::Request<'_, '_>,
    request: Request,
) -> Result<Upgrade, Answer> {
    let config = &shared.config;
    let cookie_session = request.cookie(&config.session_cookie).filter(|s| is_session_id(s));
    let set_cookie = cookie_session.is_none();
    let session_id: Arc<str> = cookie_session.unwrap_or_else(new_session_id).into();
    let set_cookie = set_cookie.then(|| session_cookie(&config.session_cookie, &session_id));

    if !request.is_upgrade() {
        if !shared.admin_apart
            && let Some(answer) = crate::admin::answer(shared, &request).await
        {
            return Err(answer); // /metrics and /admin, rendered now
        }
        return Err(page(shared, &request, set_cookie));
    }
    let route = match class_from_path(&request.path) {
        Some((app, class)) => shared.classes.get(&(app.to_string(), class.to_string())),
        None => shared.routes.get(&request.path),
    };
    let Some(route) = route.cloned() else {
        return Err(Answer::text(404, "no WebSocket class here\n"));
    };
    let key = match ws_proto::validate_request(parsed) {
        Ok(valid) => valid.key.to_vec(),
        Err(e) => return Err(Answer::refused(&e)),
    };
    let deflate = shared
        .socket_config
        .deflate
        .as_ref()
        .and_then(|d| ws_proto::negotiate_deflate_headers(d, parsed.headers));
    if !shared.origins.allows(request.origin(), request.header("Host")) {
        tracing::info!(origin = ?request.origin(), host = ?request.header("Host"), "origin refused");
        return Err(Answer::text(403, "origin not allowed\n"));
    }

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
    match catch_unwind(instance.on_pre_server(&mut pre)).await {
        Ok(Ok(())) => {}
        Ok(Err(Reject { status, body })) => {
            let mut answer = Answer::text(status, "");
            answer.body = Bytes::from(body);
            return Err(answer);
        }
        Err(panic) => {
            tracing::error!(class = %route.name, panic = panic_message(&panic), "on_pre_server panicked");
            return Err(Answer::text(500, "internal error\n"));
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
        return Err(Answer::busy());
    }
    Ok(Upgrade {
        key,
        protocol,
        set_cookie,
        deflate,
        id,
        session_id,
        instance,
        class: route.name.clone(),
        shared: pre.shared,
    })
}

/// A registered page (GET or HEAD), or 404.
fn page(shared: &Shared, request: &Request, set_cookie: Option<String>) -> Answer {
    let Some(page) = shared.pages.get(&request.path) else {
        return Answer::text(404, "not found\n");
    };
    if request.method != "GET" && request.method != "HEAD" {
        return Answer::text(405, "method not allowed\n").header("Allow", "GET, HEAD");
    }
    let mut answer = Answer {
        status: 200,
        headers: vec![("Cache-Control", "no-cache".into())],
        content_type: Cow::Owned(page.content_type.clone()),
        body: page.body.clone(),
        head_only: request.method == "HEAD",
    };
    if let Some(cookie) = set_cookie {
        answer.headers.push(("Set-Cookie", cookie));
    }
    answer
}

/// How a connection of the server's own listener starts: plain, or TLS first.
pub(crate) enum Incoming {
    Tcp(tokio::net::TcpStream),
    Other(Transport),
}

/// A new connection's task: TLS (when configured), the handshake, then (for a WebSocket) the
/// socket's own task. `shared` holds its place under `max_connections` (for its whole life)
/// and `pending` under `max_pending_handshakes` (until its handshake ends). The TLS handshake
/// and the request head share one deadline, `request_timeout`.
pub(crate) async fn handle_connection(
    incoming: Incoming,
    peer: Option<SocketAddr>,
    shared: Slot,
    pending: Pending,
) {
    let deadline = Instant::now() + shared.config.request_timeout;
    let mut stream = match incoming {
        Incoming::Other(stream) => stream,
        #[cfg(not(feature = "tls"))]
        Incoming::Tcp(tcp) => Transport::Tcp(tcp),
        #[cfg(feature = "tls")]
        Incoming::Tcp(tcp) => match &shared.tls {
            None => Transport::Tcp(tcp),
            // Boxed: a plain connection's task does not carry rustls's handshake state.
            Some(tls) => match Box::pin(accept_tls(tls, tcp, deadline, &shared)).await {
                Some(tls) => tls,
                None => return,
            },
        },
    };
    // Until the head is complete the task holds only the stream and a small buffer: a
    // client that sends its request slowly (or never) costs little memory.
    let mut buf = BytesMut::new();
    let limits =
        HeadLimits { max_bytes: shared.config.max_header_bytes, max_headers: shared.config.max_headers };
    let reading = read_request_head(&mut stream, &mut buf, limits);
    let head = tokio::select! {
        head = tokio::time::timeout_at(deadline, reading) => Some(head),
        _ = shared.stop.cancelled() => None,
    };
    // The rest runs boxed, so its state is allocated only once the head has arrived; and the
    // socket gets a task of its own, so the handshake's state is not carried for the
    // socket's whole life: an idle socket's task holds only what the socket needs.
    let accepted = match head {
        None => respond(&mut stream, Answer::busy()).await,
        Some(head) => Box::pin(handshake(stream, buf, head, peer, &shared)).await,
    };
    drop(pending);
    if let Some(accepted) = accepted {
        tokio::spawn(run_socket(accepted, shared));
    }
}

/// The TLS handshake, by `deadline`; `None` when it fails, stalls or shutdown begins.
#[cfg(feature = "tls")]
async fn accept_tls(
    tls: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    deadline: Instant,
    shared: &Shared,
) -> Option<Transport> {
    let peer = tcp.peer_addr().ok();
    let accepting = tokio::time::timeout_at(deadline, tls.accept(tcp));
    let done = tokio::select! {
        done = accepting => done,
        _ = shared.stop.cancelled() => return None,
    };
    match done {
        Ok(Ok(tls)) => Some(Transport::boxed(tls)),
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake not completed in time: dropped");
            None
        }
    }
}

/// Answers the request whose head is in `buf`: a page, an error, or (after `on_pre_server`)
/// the 101.
async fn handshake<S>(
    mut stream: S,
    buf: BytesMut,
    head: Result<Result<usize, ws_session::Error>, tokio::time::error::Elapsed>,
    peer: Option<SocketAddr>,
    shared: &Shared,
) -> Option<Accepted>
where
    S: AsyncRead + AsyncWrite + Unpin + Into<Transport>,
{
    let config = &shared.config;
    let head_len = match head {
        Ok(Ok(n)) => n,
        Ok(Err(ws_session::Error::Handshake(e))) => return respond(&mut stream, Answer::refused(&e)).await,
        Ok(Err(_)) => return None, // the client went away
        Err(_) => {
            tracing::debug!(?peer, "request not received in time: dropped");
            return respond(&mut stream, Answer::text(408, "request timeout\n")).await;
        }
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    if parsed.parse(&buf[..head_len]).is_err() {
        return respond(&mut stream, Answer::text(400, "malformed request\n")).await;
    }
    let request = Request::from_parsed(&parsed, peer);
    let upgrade = match decide(shared, &parsed, request).await {
        Ok(upgrade) => upgrade,
        Err(answer) => return respond(&mut stream, answer).await,
    };
    drop(headers); // ends the borrow of `buf` by the parsed request
    // Keep only what follows the request (usually nothing), not the handshake buffer.
    let leftover = if buf.len() > head_len { BytesMut::from(&buf[head_len..]) } else { BytesMut::new() };
    drop(buf);
    let mut response = Vec::with_capacity(256);
    let mut headers: Vec<(&str, &str)> =
        upgrade.set_cookie.iter().map(|c| ("Set-Cookie", c.as_str())).collect();
    if let Some(agreed) = &upgrade.deflate {
        headers.push(("Sec-WebSocket-Extensions", agreed.response.as_str()));
    }
    ws_proto::write_accept_response(&mut response, &upgrade.key, upgrade.protocol.as_deref(), &headers);
    stream.write_all(&response).await.ok()?;
    Some(upgrade.into_accepted(stream.into(), leftover, shared))
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
}
