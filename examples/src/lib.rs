//! The seeds' programs, after the IRIS `%CSP.WebSocket` examples: an echo server with a read
//! timeout ([`echo`]), a chat with rooms ([`chat`]), and a detached (shared) socket driven from
//! another task ([`detached`]). The `demo` binary serves all three and the chat page.

pub mod broadcast;
pub mod chat;
pub mod detached;
pub mod echo;

use std::time::Duration;

use ws_server::ServerBuilder;

/// The demo's classes and page on `builder`, at the URLs both `demo` and `axum-demo` serve:
/// - echo:     `/csp/user/MyApp.MyWebSocketServer.cls` (waits `echo_timeout` for a message)
/// - chat:     `/csp/user/Chat.Server.cls?room=NAME`, and its page at `/`
/// - detached: `/csp/user/MyApp.Detached.cls` (its id goes to `detached_ids` for the worker)
/// - broadcast (for the load benchmark): `/csp/user/Bench.Broadcast.cls`
pub fn demo_classes(
    builder: ServerBuilder,
    echo_timeout: Duration,
    detached_ids: tokio::sync::mpsc::UnboundedSender<ws_server::WebSocketId>,
) -> ServerBuilder {
    builder
        .class("user", "MyApp.MyWebSocketServer", move || echo::MyWebSocketServer { timeout: echo_timeout })
        .class("user", "Chat.Server", chat::ChatServer::default)
        .class("user", "MyApp.Detached", move || detached::Detached::new(detached_ids.clone()))
        .class("user", "Bench.Broadcast", broadcast::Broadcast::default)
        .page("/", "text/html; charset=utf-8", chat::PAGE)
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS` (the seeds' `$ZDATETIME($H,3)` format).
pub fn now_string() -> String {
    format_utc(time::OffsetDateTime::now_utc())
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_utc(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    #[test]
    fn utc_format() {
        let at = |secs| OffsetDateTime::from_unix_timestamp(secs).unwrap();
        assert_eq!(super::format_utc(at(0)), "1970-01-01 00:00:00");
        assert_eq!(super::format_utc(at(951_782_400)), "2000-02-29 00:00:00");
        assert_eq!(super::format_utc(at(1_795_000_000)), "2026-11-18 11:06:40");
    }
}
