//! Pages rendered at request time: `/metrics` (Prometheus text format) and the admin page
//! `/admin` with its JSON (`/admin/api/stats`, `/admin/api/presence?room=`), behind the
//! operator's token. The page is static HTML and JS built into the binary.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use crate::Request;
use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::server::Shared;
use crate::upgrade::Answer;

/// The admin page: no build step, no CDN.
const PAGE: &str = include_str!("admin/page.html");

/// The answer for `/metrics` or `/admin…` when they are on; `None` for any other request.
pub(crate) async fn answer(shared: &Shared, request: &Request) -> Option<Answer> {
    let metrics = shared.metrics.as_ref()?;
    let path = request.path.as_str();
    if path == "/metrics" && metrics.serve {
        return Some(ok(CONTENT_TYPE, metrics.text()));
    }
    let token = metrics.admin_token.as_deref()?;
    if path != "/admin" && path != "/admin/" && !path.starts_with("/admin/api/") {
        return None;
    }
    if !authorized(request, token) {
        return Some(Answer::text(401, "admin token required\n").header("WWW-Authenticate", "Bearer"));
    }
    Some(match path {
        "/admin" | "/admin/" => ok("text/html; charset=utf-8", PAGE.to_string()),
        "/admin/api/stats" => ok("application/json", stats(shared, metrics).to_string()),
        "/admin/api/presence" => {
            let room = request.query_param("room").unwrap_or("default");
            let members = shared.registry.room_members(room).await;
            let members: Vec<_> = members
                .iter()
                .map(|m| json!({"id": m.id.to_string(), "label": m.label, "since_ms": m.since_ms}))
                .collect();
            ok("application/json", json!({"room": room, "members": members}).to_string())
        }
        _ => Answer::text(404, "not found\n"),
    })
}

/// The token as `?token=` or `Authorization: Bearer`, compared in constant time.
fn authorized(request: &Request, token: &str) -> bool {
    let bearer = request.header("Authorization").and_then(|h| h.strip_prefix("Bearer "));
    [request.query_param("token"), bearer].into_iter().flatten().any(|given| same(given.trim(), token))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn ok(content_type: &'static str, body: String) -> Answer {
    Answer {
        status: 200,
        headers: vec![("Cache-Control", "no-store".into())],
        content_type: Cow::Borrowed(content_type),
        body: Bytes::from(body),
        head_only: false,
    }
}

/// Everything the admin page shows but presence, at this instant.
fn stats(shared: &Shared, metrics: &Metrics) -> serde_json::Value {
    let s = metrics.snapshot();
    let classes: Vec<_> = s
        .classes
        .iter()
        .map(|c| {
            json!({
                "class": &*c.name, "sockets": c.open, "opened": c.opened,
                "messages_in": c.messages_in, "messages_out": c.messages_out,
                "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                "closed": c.closed.iter().map(|(code, n)| json!({"code": code, "count": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let cluster = s.cluster.as_ref().map(|c| {
        json!({
            "bus_up": c.bus_up, "publish_total": c.publish_total,
            "nodes": c.nodes.iter().map(|(node, sockets)| json!({"node": node, "sockets": sockets})).collect::<Vec<_>>(),
        })
    });
    json!({
        "time_ms": crate::registry::now_ms(),
        "sockets": shared.registry.len(),
        "classes": classes,
        "rooms": s.rooms,
        "top_rooms": s.top_rooms.iter().map(|(room, n)| json!({"room": room, "members": n})).collect::<Vec<_>>(),
        "handshake_failures": s.handshake_failures.iter().map(|(status, n)| json!({"status": status, "count": n})).collect::<Vec<_>>(),
        "slow_consumer_closes": s.stats.slow_consumer_closes,
        "dropped_frames": s.stats.dropped_frames,
        "cluster": cluster,
    })
}

/// Requests the admin listener serves at a time; past that, connections are closed at once.
const ADMIN_CONNECTIONS: usize = 64;

/// The admin listener ([`ServerBuilder::admin_addr`](crate::ServerBuilder::admin_addr)):
/// plain HTTP/1.1, one request per connection, `/metrics` and `/admin…` and 404 for anything
/// else, each request head within `request_timeout` and the server's head limits, until
/// shutdown begins.
pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let request_timeout = shared.config.request_timeout;
            let _ = tokio::time::timeout(request_timeout, serve_one(stream, peer, &shared)).await;
        });
    }
}

async fn serve_one(mut stream: tokio::net::TcpStream, peer: std::net::SocketAddr, shared: &Shared) {
    let config = &shared.config;
    let limits = ws_proto::HeadLimits { max_bytes: config.max_header_bytes, max_headers: config.max_headers };
    let mut buf = bytes::BytesMut::new();
    let answer = match ws_session::server_support::read_request_head(&mut stream, &mut buf, limits).await {
        Ok(len) => {
            let mut headers = vec![ws_proto::httparse::EMPTY_HEADER; config.max_headers];
            let mut parsed = ws_proto::httparse::Request::new(&mut headers);
            match parsed.parse(&buf[..len]) {
                Ok(_) => {
                    let request = Request::from_parsed(&parsed, Some(peer));
                    answer(shared, &request).await.unwrap_or_else(|| Answer::text(404, "not found\n"))
                }
                Err(_) => Answer::text(400, "malformed request\n"),
            }
        }
        Err(ws_session::Error::Handshake(e)) => Answer::refused(&e),
        Err(_) => return,
    };
    crate::upgrade::respond::<_, ()>(&mut stream, answer).await;
}
