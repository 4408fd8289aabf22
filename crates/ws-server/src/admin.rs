//! Pages rendered at request time: `/metrics` (Prometheus text format) and the admin page
//! `/admin` with its JSON (`/admin/api/stats`, `/admin/api/presence?room=`), behind the
//! operator's token. The page is static HTML and JS built into the binary.

use std::borrow::Cow;

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
