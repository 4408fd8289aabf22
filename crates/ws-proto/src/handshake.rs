//! The opening handshake (RFC 6455 section 4): the server validates the client's request and
//! answers 101; the client builds the request and validates the answer. HTTP parsing is
//! `httparse`'s; this module applies section 4.2.1 (server) and 4.1 (client) to the result.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The GUID appended to the key before hashing (section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (section 4.2.2 item 5.4).
///
/// ```
/// assert_eq!(ws_proto::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// A `Sec-WebSocket-Key` value made from 16 random bytes the caller supplies.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// Why a handshake failed, with the HTTP status a server answers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request is not valid HTTP/1.1.
    Http(httparse::Error),
    /// The request head is larger than the server accepts (431).
    TooLarge,
    /// Not a GET request (405 would also do; the RFC asks for 400-class).
    Method,
    /// Not HTTP/1.1 or later.
    HttpVersion,
    /// No `Host` header.
    MissingHost,
    /// `Upgrade` does not list `websocket`.
    Upgrade,
    /// `Connection` does not list `Upgrade`.
    Connection,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes of base64.
    Key,
    /// `Sec-WebSocket-Version` is not 13: answered 426 with `Sec-WebSocket-Version: 13`.
    Version,
    /// A header value that is not valid UTF-8 where text is required.
    HeaderEncoding(&'static str),
    /// (client) The answer was not `101 Switching Protocols`.
    Status(u16),
    /// (client) `Sec-WebSocket-Accept` missing or wrong.
    Accept,
    /// (client) The server chose a subprotocol the client did not offer.
    Protocol,
    /// (client) The server answered with an extension the client did not offer.
    Extension,
    /// (client) The server's permessage-deflate answer breaks RFC 7692 section 7.1 (an
    /// unknown, repeated or invalid parameter, a window the client did not allow or cannot
    /// compress with): the client fails the connection.
    Deflate(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers with: 426 for a wrong version, 405 for a method other
    /// than GET, 431 for a head over the server's limit, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            HandshakeError::Method => 405,
            HandshakeError::TooLarge => 431,
            _ => 400,
        }
    }

    /// Appends a complete HTTP error response for this failure (with
    /// `Sec-WebSocket-Version: 13` on a 426), closing the connection.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let extra: &[(&str, &str)] = match self {
            HandshakeError::Version => &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")],
            HandshakeError::Method => &[("Allow", "GET")],
            _ => &[],
        };
        write_error_response(out, self.status(), extra, &alloc::format!("{self}\n"));
    }
}

impl core::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HandshakeError::Http(e) => write!(f, "malformed HTTP request: {e}"),
            HandshakeError::TooLarge => f.write_str("request header too large"),
            HandshakeError::Method => f.write_str("WebSocket handshake must be a GET request"),
            HandshakeError::HttpVersion => f.write_str("WebSocket handshake needs HTTP/1.1"),
            HandshakeError::MissingHost => f.write_str("missing Host header"),
            HandshakeError::Upgrade => f.write_str("Upgrade header does not name websocket"),
            HandshakeError::Connection => f.write_str("Connection header does not name Upgrade"),
            HandshakeError::Key => f.write_str("missing or malformed Sec-WebSocket-Key"),
            HandshakeError::Version => f.write_str("unsupported Sec-WebSocket-Version (need 13)"),
            HandshakeError::HeaderEncoding(h) => write!(f, "header {h} is not valid text"),
            HandshakeError::Status(s) => write!(f, "server answered {s}, not 101"),
            HandshakeError::Accept => f.write_str("wrong or missing Sec-WebSocket-Accept"),
            HandshakeError::Protocol => f.write_str("server chose a subprotocol not offered"),
            HandshakeError::Extension => f.write_str("server chose an extension not offered"),
            HandshakeError::Deflate(why) => write!(f, "invalid permessage-deflate answer: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HandshakeError {}

/// Appends a small HTTP/1.1 error response with a text body and `Connection: close`.
pub fn write_error_response(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: &str) {
    use core::fmt::Write as _;
    let mut head = String::new();
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// The standard reason phrase for the statuses this stack sends.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Iterates over the comma-separated tokens of every header named `name` (case-insensitive),
/// trimmed, empty ones skipped (RFC 7230 section 7 list syntax).
pub fn header_tokens<'h, 'b: 'h>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b str> + 'h {
    list_tokens(headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value))
}

/// The comma-separated tokens of header values (of one header name, from any HTTP library),
/// trimmed, empty ones skipped; values that are not UTF-8 are skipped (RFC 7230 section 7).
pub fn list_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a str> {
    values
        .filter_map(|v| core::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
}

/// The value of the single header `name`, if present.
pub fn header_value<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Limits on an HTTP head, the caller's choice (as with `httparse`, which parses into a
/// header array the caller sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head, in bytes.
    pub max_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    /// 16 KiB and 64 headers.
    fn default() -> Self {
        HeadLimits { max_bytes: 16 << 10, max_headers: 64 }
    }
}

/// The server's side of reading the opening handshake, sans IO: does `buf` (the bytes
/// received so far) hold a complete request head? `Ok(Some(len))`: it is `buf[..len]` (what
/// follows is the client's first frames); `Ok(None)`: read more; `Err`: refuse, answering with
/// [`HandshakeError::write_response`] (431 past the limits, 400 when malformed). Then
/// [`validate_request`] the head and answer with [`write_accept_response`].
pub fn request_head_len(buf: &[u8], limits: HeadLimits) -> Result<Option<usize>, HandshakeError> {
    head_len(buf, limits, true)
}

/// The client's side: does `buf` hold the server's complete response head? As
/// [`request_head_len`]; then [`validate_response`] it.
pub fn response_head_len(buf: &[u8], limits: HeadLimits) -> Result<Option<usize>, HandshakeError> {
    head_len(buf, limits, false)
}

fn head_len(buf: &[u8], limits: HeadLimits, request: bool) -> Result<Option<usize>, HandshakeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = alloc::vec![httparse::EMPTY_HEADER; limits.max_headers];
    let parsed = if request {
        httparse::Request::new(&mut headers).parse(buf)
    } else {
        httparse::Response::new(&mut headers).parse(buf)
    };
    match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_bytes => Ok(Some(n)),
        Ok(httparse::Status::Complete(_)) => Err(HandshakeError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_bytes => Err(HandshakeError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooLarge),
        Err(e) => Err(HandshakeError::Http(e)),
    }
}

/// An extension offered in `Sec-WebSocket-Extensions`: its name and `;`-separated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer<'a> {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: &'a str,
    /// Parameters as `(name, value)`; a value-less parameter has `None`.
    pub params: Vec<(&'a str, Option<&'a str>)>,
}

/// Parses every `Sec-WebSocket-Extensions` header (section 9.1).
pub fn parse_extensions<'b>(headers: &[httparse::Header<'b>]) -> Vec<ExtensionOffer<'b>> {
    header_tokens(headers, "Sec-WebSocket-Extensions")
        .map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                })
                .collect();
            ExtensionOffer { name, params }
        })
        .collect()
}

/// A client's opening handshake that passed section 4.2.1's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest<'a> {
    /// The request target (path and query).
    pub path: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    /// The `Origin` header, when sent (browsers always send it).
    pub origin: Option<&'a str>,
    /// `Sec-WebSocket-Key`, kept for computing the accept value.
    pub key: &'a [u8],
    /// Subprotocols offered, in the client's order of preference.
    pub protocols: Vec<&'a str>,
    /// Extensions offered.
    pub extensions: Vec<ExtensionOffer<'a>>,
}

/// Checks a parsed request against section 4.2.1: GET, HTTP/1.1, `Host`,
/// `Upgrade: websocket`, `Connection: Upgrade` (tokens, case-insensitive, inside lists), a
/// `Sec-WebSocket-Key` of 16 base64-encoded bytes, and `Sec-WebSocket-Version: 13`.
pub fn validate_request<'b>(req: &httparse::Request<'_, 'b>) -> Result<ClientRequest<'b>, HandshakeError> {
    let headers: &[httparse::Header<'b>] = req.headers;
    if req.method != Some("GET") {
        return Err(HandshakeError::Method);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let host = header_value(headers, "Host").ok_or(HandshakeError::MissingHost)?;
    let host = core::str::from_utf8(host).map_err(|_| HandshakeError::HeaderEncoding("Host"))?;
    if !has_token(headers, "Upgrade", "websocket") {
        return Err(HandshakeError::Upgrade);
    }
    if !has_token(headers, "Connection", "Upgrade") {
        return Err(HandshakeError::Connection);
    }
    let mut keys = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Key"));
    let key = match (keys.next(), keys.next()) {
        (Some(h), None) => trim_ascii(h.value),
        _ => return Err(HandshakeError::Key),
    };
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::Key),
    }
    let version = header_value(headers, "Sec-WebSocket-Version").map(trim_ascii);
    if version != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    let origin = match header_value(headers, "Origin") {
        Some(v) => Some(core::str::from_utf8(v).map_err(|_| HandshakeError::HeaderEncoding("Origin"))?),
        None => None,
    };
    Ok(ClientRequest {
        path: req.path.unwrap_or("/"),
        host,
        origin,
        key,
        protocols: header_tokens(headers, "Sec-WebSocket-Protocol").collect(),
        extensions: parse_extensions(headers),
    })
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Appends the `101 Switching Protocols` answer for `key`, naming `protocol` when one was
/// chosen, then each of `extra_headers`.
pub fn write_accept_response(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extra_headers: &[(&str, &str)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = protocol {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What a client puts in its opening handshake.
#[derive(Debug, Clone, Default)]
pub struct RequestParams<'a> {
    /// `Host` header value (`host:port`).
    pub host: &'a str,
    /// The request target, e.g. `/chat?room=a`.
    pub path: &'a str,
    /// Subprotocols to offer, most preferred first.
    pub protocols: &'a [&'a str],
    /// Further headers (`Origin`, `Cookie`, ...).
    pub extra_headers: &'a [(&'a str, &'a str)],
}

/// Appends a client opening handshake using `key` (from [`client_key`]).
pub fn write_request(out: &mut Vec<u8>, params: &RequestParams<'_>, key: &str) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(params.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(out, "Host", params.host);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    push_header(out, "Sec-WebSocket-Key", key);
    if !params.protocols.is_empty() {
        push_header(out, "Sec-WebSocket-Protocol", &params.protocols.join(", "));
    }
    for (name, value) in params.extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// The accepted server answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse<'a> {
    /// The subprotocol the server chose, if any.
    pub protocol: Option<&'a str>,
    /// The permessage-deflate parameters agreed, when the client offered it (through
    /// [`validate_response_with`]) and the server accepted.
    pub deflate: Option<crate::DeflateParams>,
}

/// Checks the server's answer (section 4.1, client requirements): status 101,
/// `Upgrade: websocket`, `Connection: Upgrade`, the right `Sec-WebSocket-Accept`, a
/// subprotocol among `offered` (or none), and no extension (none is offered).
pub fn validate_response<'b>(
    resp: &httparse::Response<'_, 'b>,
    key: &str,
    offered: &[&str],
) -> Result<ServerResponse<'b>, HandshakeError> {
    validate_response_with(resp, key, offered, None)
}

/// [`validate_response`] for a client that offered permessage-deflate from `deflate` (the
/// value of [`DeflateConfig::offer`](crate::DeflateConfig::offer) among its headers): the
/// server's `Sec-WebSocket-Extensions` is checked by
/// [`validate_deflate_response`](crate::validate_deflate_response) and the agreed parameters
/// are in [`ServerResponse::deflate`].
pub fn validate_response_with<'b>(
    resp: &httparse::Response<'_, 'b>,
    key: &str,
    offered: &[&str],
    deflate: Option<&crate::DeflateConfig>,
) -> Result<ServerResponse<'b>, HandshakeError> {
    let headers: &[httparse::Header<'b>] = resp.headers;
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Status(code));
    }
    if !has_token(headers, "Upgrade", "websocket") {
        return Err(HandshakeError::Upgrade);
    }
    if !has_token(headers, "Connection", "Upgrade") {
        return Err(HandshakeError::Connection);
    }
    let accept = header_value(headers, "Sec-WebSocket-Accept").map(trim_ascii);
    if accept != Some(accept_key(key.as_bytes()).as_bytes()) {
        return Err(HandshakeError::Accept);
    }
    let deflate = crate::validate_deflate_response(
        deflate,
        headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions")).map(|h| h.value),
    )?;
    let mut chosen = header_tokens(headers, "Sec-WebSocket-Protocol");
    let protocol = match (chosen.next(), chosen.next()) {
        (None, _) => None,
        (Some(p), None) if offered.contains(&p) => Some(p),
        _ => return Err(HandshakeError::Protocol),
    };
    Ok(ServerResponse { protocol, deflate })
}

#[cfg(test)]
mod tests;
