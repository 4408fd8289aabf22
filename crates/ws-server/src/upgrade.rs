//! One connection's opening: the request head under the limits, pages, routing, Origin,
//! `on_pre_server`, and the 101.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use ws_proto::{HandshakeError, HeadLimits, Role, httparse};
use ws_session::WebSocket;
use ws_session::server_support::read_request_head;

use crate::class::{PreServer, Reject, WebSocketServer};
use crate::id::{is_session_id, new_session_id};
use crate::lifecycle::{catch_unwind, panic_message, run_socket};
use crate::mailbox::Mailbox;
use crate::request::Request;
use crate::server::Shared;
use crate::slot::{Pending, Slot};
use crate::{Connection, WebSocketId};

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
pub(crate) struct Accepted {
    /// The socket as its `server` sees it (a dedicated one; `run_shared` takes a shared
    /// one's apart). It carries the ids, so the task holds them once.
    pub(crate) conn: Connection,
    pub(crate) instance: Box<dyn WebSocketServer>,
    pub(crate) class: Arc<str>,
    pub(crate) shared: bool,
}

/// A new TCP connection's task: the handshake, then (for a WebSocket) the socket's own task.
/// `shared` holds its place under `max_connections` (for its whole life) and `pending` under
/// `max_pending_handshakes` (until its handshake ends).
pub(crate) async fn handle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Slot,
    pending: Pending,
) {
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
        tokio::spawn(run_socket(accepted, shared));
    }
}

/// Answers the request whose head is in `buf`: a page, an error, or (after `on_pre_server`)
/// the 101.
async fn handshake(
    mut stream: TcpStream,
    buf: BytesMut,
    head: Result<Result<usize, ws_session::Error>, tokio::time::error::Elapsed>,
    peer: SocketAddr,
    shared: &Shared,
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
    match catch_unwind(instance.on_pre_server(&mut pre)).await {
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
