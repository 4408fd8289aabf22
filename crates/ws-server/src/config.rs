//! Server-wide settings and the Origin policy.

use std::time::Duration;

use ws_proto::CloseCode;

/// Server-wide settings: every limit and timeout has a setter on
/// [`ServerBuilder`](crate::ServerBuilder); [`ServerBuilder::config`](crate::ServerBuilder::config)
/// takes a whole one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Settings of every WebSocket (limits, close and keepalive timeouts).
    pub socket: ws_session::Config,
    /// Largest request head; larger ones are answered 431.
    pub max_header_bytes: usize,
    /// Most headers in a request; more are answered 431.
    pub max_headers: usize,
    /// Time allowed for the TLS handshake (when there is one) and the whole request head
    /// together; slower clients are dropped (408 when the head is late).
    pub request_timeout: Duration,
    /// How often TLS certificate files are checked for changes (they also reload on SIGHUP).
    pub tls_reload_interval: Duration,
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
            socket: ws_session::Config::default()
                .protocol(
                    ws_proto::Config::default()
                        .max_message_size(DEFAULT_MAX_MESSAGE)
                        .max_frame_size(DEFAULT_MAX_MESSAGE),
                )
                .deflate(Some(default_deflate())),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            request_timeout: Duration::from_secs(10),
            tls_reload_interval: Duration::from_secs(10),
            session_timeout: Duration::from_secs(900),
            shutdown_timeout: Duration::from_secs(5),
            session_cookie: "WSSESSIONID".into(),
            max_queued_bytes: 1 << 20,
            slow_consumer_code: CloseCode::POLICY,
            max_pending_handshakes: 4096,
            max_connections: 100_000,
        }
    }
}

/// A server's default limit on a message (and a frame), 1 MiB: Socket.IO's default
/// (`maxHttpBufferSize`). A socket may hold one message this large while it arrives, and a
/// compressed one is inflated no further than this (then 1009), so a peer's first fragment of
/// a zip bomb pins at most this much. `ServerBuilder::max_message_size` raises it.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// permessage-deflate as a server with many sockets wants it: on, and no context kept
/// between messages in either direction (the client is asked for `client_no_context_takeover`
/// too), so an idle socket holds no compression state (64 bytes) and a broadcast is compressed
/// once for all its recipients. Keeping contexts compresses small similar messages better but
/// costs about 47 KiB per socket for the client's direction and 370 KiB for the server's
/// (window 15): see [`ws_proto::DeflateConfig`]. A policy that allows contexts can still
/// bound them per socket with [`DeflateConfig::max_idle_memory`](ws_proto::DeflateConfig::max_idle_memory).
pub fn default_deflate() -> ws_proto::DeflateConfig {
    ws_proto::DeflateConfig::default().server_no_context_takeover(true).client_no_context_takeover(true)
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
    pub(crate) fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
