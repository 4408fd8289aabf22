//! Opening handshakes over a stream: `accept` for a server without a router, `connect` for a
//! client.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_proto::httparse;
use ws_proto::{ClientRequest, HandshakeError, HeadLimits, RequestParams, Role};

use crate::{Config, Error, Transport, WebSocket};

/// Reads an HTTP head into `buf` until `head_len` (ws-proto's [`request_head_len`] or
/// [`response_head_len`]) finds it complete; returns its length. Memory is taken only for
/// bytes that arrive (the buffer grows by doubling from 512 bytes once readable), so a peer
/// that stalls mid-head holds little. The one loop every handshake here reads with, both
/// roles, and ws-server's listener (see [`crate::server_support`]).
///
/// [`request_head_len`]: ws_proto::request_head_len
/// [`response_head_len`]: ws_proto::response_head_len
pub(crate) async fn read_head<S>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: HeadLimits,
    head_len: fn(&[u8], HeadLimits) -> Result<Option<usize>, HandshakeError>,
) -> Result<usize, Error>
where
    S: AsyncRead + Unpin,
{
    let closed = || Error::Closed { code: ws_proto::CloseCode::ABNORMAL, reason: String::new() };
    loop {
        if let Some(len) = head_len(buf, limits)? {
            return Ok(len);
        }
        if buf.is_empty() {
            // Nothing yet: the first bytes land in a small array in this future, and the
            // buffer is allocated once they have arrived.
            let mut first = [0u8; 128];
            let n = stream.read(&mut first).await?;
            if n == 0 {
                return Err(closed());
            }
            buf.reserve(512.max(n));
            buf.extend_from_slice(&first[..n]);
            continue;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(limits.max_bytes.saturating_sub(buf.len())).max(1));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(closed());
        }
    }
}

/// Reads a request head (a server's side of the opening handshake) into `buf`; returns its
/// length. See [`crate::server_support`].
pub async fn read_request_head<S>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<usize, Error>
where
    S: AsyncRead + Unpin,
{
    read_head(stream, buf, limits, ws_proto::request_head_len).await
}

/// Runs the server side of the opening handshake on `stream` and accepts every valid
/// request with no subprotocol. Invalid requests get their HTTP answer (400, 405, 426, 431)
/// and an `Err(Handshake(..))`.
pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(stream, config, |_| Ok(None)).await
}

/// Like [`accept`], but `decide` sees the validated request first and returns the chosen
/// subprotocol (one of `request.protocols`, or `None`) or an HTTP status to refuse with.
pub async fn accept_with<S, F>(mut stream: S, config: Config, decide: F) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&ClientRequest<'_>) -> Result<Option<String>, u16>,
{
    let mut buf = BytesMut::new();
    let limits = HeadLimits { max_bytes: config.max_handshake_size, ..HeadLimits::default() };
    let head =
        tokio::time::timeout(config.handshake_timeout, read_request_head(&mut stream, &mut buf, limits))
            .await
            .map_err(|_| Error::HandshakeTimeout);
    let head_len = match head {
        Ok(Ok(n)) => n,
        Ok(Err(Error::Handshake(e))) | Err(Error::Handshake(e)) => return Err(refuse(&mut stream, e).await),
        Ok(Err(e)) | Err(e) => return Err(e),
    };
    // Parse, validate and decide without awaiting, so neither the header array nor the
    // borrowed request is kept in this future (it lives as long as the connection's task).
    enum Answer {
        Accept(Vec<u8>, Option<String>, Option<ws_proto::DeflateParams>),
        Invalid(HandshakeError),
        Refuse(u16),
    }
    let answer = {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let _ = req.parse(&buf[..head_len]);
        match ws_proto::validate_request(&req) {
            Err(e) => Answer::Invalid(e),
            Ok(request) => match decide(&request) {
                Err(status) => Answer::Refuse(status),
                Ok(protocol) => {
                    let agreed = config
                        .deflate
                        .as_ref()
                        .and_then(|d| ws_proto::negotiate_deflate_headers(d, req.headers));
                    let extension =
                        agreed.as_ref().map(|a| ("Sec-WebSocket-Extensions", a.response.as_str()));
                    let mut out = Vec::with_capacity(160);
                    ws_proto::write_accept_response(
                        &mut out,
                        request.key,
                        protocol.as_deref(),
                        extension.as_slice(),
                    );
                    Answer::Accept(out, protocol, agreed.map(|a| a.params))
                }
            },
        }
    };
    let (response, protocol, deflate) = match answer {
        Answer::Accept(response, protocol, deflate) => (response, protocol, deflate),
        Answer::Invalid(e) => return Err(refuse(&mut stream, e).await),
        Answer::Refuse(status) => {
            let mut out = Vec::new();
            ws_proto::write_error_response(&mut out, status, &[], "refused\n");
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            return Err(Error::Handshake(HandshakeError::Status(status)));
        }
    };
    stream.write_all(&response).await?;
    drop(response);
    // Keep only what follows the request; the handshake buffer itself is released.
    let leftover = if buf.len() > head_len { BytesMut::from(&buf[head_len..]) } else { BytesMut::new() };
    drop(buf);
    let mut ws = WebSocket::from_upgraded(stream, Role::Server, config, leftover, protocol);
    if let Some(params) = deflate {
        ws.set_deflate(params);
    }
    Ok(ws)
}

async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, error: HandshakeError) -> Error {
    let mut out = Vec::new();
    error.write_response(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
    Error::Handshake(error)
}

/// What a client sends and how long it waits: [`ConnectOptions::default`], then the setters.
///
/// ```
/// let options = ws_session::ConnectOptions::default().protocol("chat").header("Origin", "http://127.0.0.1");
/// assert_eq!(options.protocols, ["chat"]);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Subprotocols to offer, most preferred first.
    pub protocols: Vec<String>,
    /// Extra request headers (`Origin`, `Cookie`, ...).
    pub headers: Vec<(String, String)>,
    /// Limit on the TCP connect.
    pub connect_timeout: Duration,
    /// The connection's settings (`handshake_timeout` limits the handshake, TLS's
    /// included).
    pub config: Config,
    /// TLS for `wss://`: `None` trusts webpki's roots (Mozilla's); see
    /// [`root_ca_pem`](ConnectOptions::root_ca_pem) and
    /// [`tls_config`](ConnectOptions::tls_config).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            config: Config::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// Offers `protocol` too (after those already offered: most preferred first).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Sends the header `name: value` too.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the limit on the TCP connect.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the connection's settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// For `wss://`: trusts only the CA certificates in `pem` (a private deployment's CA, a
    /// test's), instead of webpki's roots.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), ws_session::Error> {
    /// let ca = std::fs::read("ca.pem")?;
    /// let options = ws_session::ConnectOptions::default().root_ca_pem(&ca)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn root_ca_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.tls = Some(crate::tls::config_trusting_pem(pem)?);
        Ok(self)
    }

    /// For `wss://`: uses this rustls configuration (client certificates, other roots, a
    /// different provider). Offer ALPN `http/1.1` in it, or none.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

/// The server's answer to a client handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status (101).
    pub status: u16,
    /// Every response header, in order.
    pub headers: Vec<(String, String)>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A parsed `ws://host:port/path?query` or `wss://…` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WsUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

/// Parses a `ws://` or `wss://` URL with the `http` crate's `Uri` (RFC 3986).
fn parse_url(url: &str) -> Result<WsUrl, Error> {
    let bad = |why: &str| Error::InvalidInput(format!("{why}: {url}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad("only ws:// and wss:// URLs are supported")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let default_port = if tls { 443 } else { 80 };
    let port = match authority.port_u16() {
        Some(port) => port,
        None if authority.as_str() == authority.host() => default_port,
        None => return Err(bad("bad port")),
    };
    Ok(WsUrl { tls, host: host.to_string(), port, path })
}

/// Opens a client connection to a `ws://` or `wss://` URL: TCP connect (with
/// `TCP_NODELAY`), TLS for `wss://` (rustls, ALPN `http/1.1`, the roots of
/// [`ConnectOptions::tls`]), then the opening handshake. Returns the socket and the server's
/// answer.
///
/// ```no_run
/// # async fn demo() -> Result<(), ws_session::Error> {
/// use std::time::Duration;
/// let (mut ws, _resp) = ws_session::connect("ws://127.0.0.1:8080/csp/user/MyApp.MyWebSocketServer.cls", &Default::default()).await?;
/// ws.write("hello").await?;
/// let reply = ws.read(32656, Duration::from_secs(10)).await?;
/// println!("{}", reply.as_text().unwrap_or(""));
/// ws.end_server().await
/// # }
/// ```
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<(WebSocket<Transport>, Response), Error> {
    let target = parse_url(url)?;
    let addr = (target.host.as_str(), target.port);
    let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::HandshakeTimeout)??;
    stream.set_nodelay(true)?;
    let default_port = if target.tls { 443 } else { 80 };
    let host = if target.port == default_port {
        target.host.clone()
    } else if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let stream = if target.tls { tls_stream(stream, &target.host, options).await? } else { stream.into() };
    client_handshake(stream, &host, &target.path, options).await
}

#[cfg(feature = "tls")]
async fn tls_stream(tcp: TcpStream, host: &str, options: &ConnectOptions) -> Result<Transport, Error> {
    let config = options.tls.clone().unwrap_or_else(crate::tls::default_client_config);
    let tls =
        tokio::time::timeout(options.config.handshake_timeout, crate::tls::connect_tls(config, host, tcp))
            .await
            .map_err(|_| Error::HandshakeTimeout)??;
    Ok(Transport::boxed(tls))
}

#[cfg(not(feature = "tls"))]
async fn tls_stream(_: TcpStream, _: &str, _: &ConnectOptions) -> Result<Transport, Error> {
    Err(Error::InvalidInput("wss:// needs ws-session's `tls` feature".into()))
}

/// Runs the client side of the opening handshake on an already connected stream.
pub async fn client_handshake<S>(
    mut stream: S,
    host: &str,
    path: &str,
    options: &ConnectOptions,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let key = ws_proto::client_key(nonce);
    let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
    let offer = options.config.deflate.as_ref().and_then(|d| d.offer());
    let mut extra: Vec<(&str, &str)> =
        options.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    if let Some(offer) = &offer {
        extra.push(("Sec-WebSocket-Extensions", offer));
    }
    let params = RequestParams { host, path, protocols: &protocols, extra_headers: &extra };
    let mut request = Vec::with_capacity(256);
    ws_proto::write_request(&mut request, &params, &key);

    let config = options.config.clone();
    let mut buf = BytesMut::new();
    let exchange = async {
        stream.write_all(&request).await?;
        let limits = HeadLimits { max_bytes: config.max_handshake_size, ..HeadLimits::default() };
        read_head(&mut stream, &mut buf, limits, ws_proto::response_head_len).await
    };
    let head_len = tokio::time::timeout(config.handshake_timeout, exchange)
        .await
        .map_err(|_| Error::HandshakeTimeout)??;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let _ = resp.parse(&buf[..head_len]);
    let offered = if offer.is_some() { config.deflate.as_ref() } else { None };
    let accepted = ws_proto::validate_response_with(&resp, &key, &protocols, offered)?;
    let deflate = accepted.deflate;
    let response = Response {
        status: resp.code.unwrap_or(0),
        headers: resp
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
        protocol: accepted.protocol.map(str::to_string),
    };
    let leftover = buf.split_off(head_len);
    let mut ws = WebSocket::from_upgraded(stream, Role::Client, config, leftover, response.protocol.clone());
    if let Some(params) = deflate {
        ws.set_deflate(params);
    }
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("ws://127.0.0.1:9001/runCase?case=1&agent=x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9001, "/runCase?case=1&agent=x")
        );
        let u = parse_url("ws://localhost?x=1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/?x=1"));
        let u = parse_url("ws://[::1]:8080").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 8080, "/"));
        let u = parse_url("wss://example.org/chat").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (true, "example.org", 443, "/chat"));
        assert!(!parse_url("ws://x").unwrap().tls);
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("ws://:80/").is_err());
        assert!(parse_url("ws://h:99999/").is_err());
    }
}
