//! The opening handshake, client side (RFC 6455 §4.1), written by hand: one fixed request per
//! target and a check of the server's `101` answer. The key is fixed (§4.1 wants a random one
//! to defeat caching proxies; there are none on loopback).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The `Sec-WebSocket-Key` of every request: the sample nonce of RFC 6455 §1.3.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that answers [`KEY`] (§1.3).
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Where the load goes: a loopback address and a path, over TLS or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `wss://`: TLS (the client configuration comes with `wsload --ca`).
    pub tls: bool,
    /// The server's address (always loopback).
    pub addr: SocketAddr,
    /// The request target, starting with `/`.
    pub path: String,
    /// The `Host` header value, as written in the URL.
    pub host: String,
}

impl Target {
    /// Parses `ws://HOST:PORT/path` or `wss://…`, accepting only `127.0.0.1`, `localhost` and
    /// `[::1]`: the load generator must never aim at another machine.
    ///
    /// ```
    /// let t = benches::Target::parse("ws://localhost:9002/echo").unwrap();
    /// assert_eq!((t.addr.to_string().as_str(), t.path.as_str(), t.tls), ("127.0.0.1:9002", "/echo", false));
    /// assert!(benches::Target::parse("wss://127.0.0.1:9002/").unwrap().tls);
    /// assert!(benches::Target::parse("ws://10.0.0.1:80/").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(format!("{url}: only ws:// and wss:// URLs")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(|| format!("{url}: expected [::1]:PORT"))?;
            (h, p)
        } else {
            authority.rsplit_once(':').ok_or_else(|| format!("{url}: the port is required"))?
        };
        let ip = match host {
            "127.0.0.1" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            "::1" => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => return Err(format!("{other}: only 127.0.0.1, localhost or [::1] may be loaded")),
        };
        let port: u16 = port.parse().map_err(|_| format!("{url}: bad port {port:?}"))?;
        Ok(Target {
            tls,
            addr: SocketAddr::new(ip, port),
            path: path.to_string(),
            host: authority.to_string(),
        })
    }

    /// The upgrade request for this target.
    pub fn request(&self) -> Vec<u8> {
        self.request_offering(None)
    }

    /// The upgrade request, offering `extensions` (a `Sec-WebSocket-Extensions` value) if any.
    ///
    /// ```
    /// let t = benches::Target::parse("ws://127.0.0.1:9002/").unwrap();
    /// let request = String::from_utf8(t.request_offering(Some("permessage-deflate"))).unwrap();
    /// assert!(request.ends_with("Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
    /// ```
    pub fn request_offering(&self, extensions: Option<&str>) -> Vec<u8> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host
        );
        if let Some(value) = extensions {
            request.push_str("Sec-WebSocket-Extensions: ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.into_bytes()
    }
}

/// The values of every `name` header in a response `head` (as [`check_response`] measured
/// it), in order.
///
/// ```
/// let head = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
/// let values: Vec<&[u8]> = benches::header_values(head, "sec-websocket-extensions").collect();
/// assert_eq!(values, [&b"permessage-deflate"[..]]);
/// ```
pub fn header_values<'a>(head: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    head.split(|&b| b == b'\n').skip(1).filter_map(move |line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name.as_bytes()).then(|| line[colon + 1..].trim_ascii())
    })
}

/// Why the server's answer is not a WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The status line is not `HTTP/1.1 101`; the line as received.
    Status(String),
    /// `Sec-WebSocket-Accept` is missing or wrong.
    Accept,
    /// The head is longer than 8 KiB.
    TooLong,
    /// permessage-deflate was offered and required (`wsload --deflate`), and the server did
    /// not agree to it.
    DeflateRefused,
    /// The server's permessage-deflate answer breaks RFC 7692 (what is wrong with it).
    Deflate(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Status(line) => write!(f, "no upgrade: {line:?}"),
            HandshakeError::Accept => f.write_str("missing or wrong Sec-WebSocket-Accept"),
            HandshakeError::TooLong => f.write_str("response head over 8 KiB"),
            HandshakeError::DeflateRefused => f.write_str(
                "the server did not agree to permessage-deflate (--deflate requires it; \
                 --deflate-optional loads such a server plain)",
            ),
            HandshakeError::Deflate(e) => write!(f, "permessage-deflate answer: {e}"),
        }
    }
}

/// Checks the response head in `buf`: `Ok(None)` if it is not complete yet, `Ok(Some(n))`
/// once the head (`n` bytes, through the blank line) says `101` with the right accept key.
/// Bytes after `n` are already WebSocket frames.
pub fn check_response(buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 8192 { Err(HandshakeError::TooLong) } else { Ok(None) };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(HandshakeError::Status(status.to_string()));
    }
    let accepted = lines.filter_map(|l| l.split_once(':')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
    });
    if !accepted {
        return Err(HandshakeError::Accept);
    }
    Ok(Some(end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://[::1]:80").unwrap();
        assert_eq!(
            (t.addr.to_string().as_str(), t.path.as_str(), t.host.as_str()),
            ("[::1]:80", "/", "[::1]:80")
        );
        assert!(Target::parse("ws://example.com:80/").is_err());
        assert!(Target::parse("ws://127.0.0.2:80/").is_err());
        assert!(Target::parse("wss://127.0.0.1:80/").unwrap().tls);
        assert!(Target::parse("http://127.0.0.1:80/").is_err());
        assert!(Target::parse("ws://127.0.0.1/").is_err());
    }

    #[test]
    fn responses() {
        let ok = format!("HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: {ACCEPT}\r\n\r\n\x01");
        assert_eq!(check_response(ok.as_bytes()), Ok(Some(ok.len() - 1)));
        assert_eq!(check_response(&ok.as_bytes()[..20]), Ok(None));
        let wrong = "HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert_eq!(check_response(wrong.as_bytes()), Err(HandshakeError::Accept));
        let refused = "HTTP/1.1 404 Not Found\r\n\r\n";
        assert_eq!(
            check_response(refused.as_bytes()),
            Err(HandshakeError::Status("HTTP/1.1 404 Not Found".into()))
        );
    }
}
