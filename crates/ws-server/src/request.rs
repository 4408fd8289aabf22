//! Reading one HTTP/1.1 request head under hard limits, and the parsed request a server class
//! sees in `on_pre_server`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use ws_proto::httparse;

/// A request as the server class sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method (`GET`).
    pub method: String,
    /// The path, without the query string, percent-decoded.
    pub path: String,
    /// The raw query string (after `?`), if any.
    pub query_string: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Every header, in order (values that are not UTF-8 are converted lossily).
    pub headers: Vec<(String, String)>,
    /// Cookies from the `Cookie` headers.
    pub cookies: Vec<(String, String)>,
    /// The client's address.
    pub peer_addr: Option<SocketAddr>,
}

impl Request {
    /// The first query parameter named `name` (e.g. `room` in `?room=lobby`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The cookie named `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The `Origin` header (browsers always send one).
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// Subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Does this request ask for a WebSocket upgrade?
    pub fn is_upgrade(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Upgrade")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket"))
        })
    }

    pub(crate) fn from_parsed(req: &httparse::Request<'_, '_>, peer_addr: Option<SocketAddr>) -> Request {
        let target = req.path.unwrap_or("/");
        let (path, query_string) = target.split_once('?').unwrap_or((target, ""));
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let cookies = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect();
        Request {
            method: req.method.unwrap_or("").to_string(),
            path: percent_decode(path, false),
            query_string: query_string.to_string(),
            query: parse_query(query_string),
            headers,
            cookies,
            peer_addr,
        }
    }
}

/// Parses `a=1&b=two%20words` (with `+` as space).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); invalid escapes are kept as
/// they are and invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Limits on the request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
    pub timeout: Duration,
}

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Over the byte or header-count limit: 431.
    TooLarge,
    /// Not HTTP: 400.
    Malformed,
    /// Not complete in time (a slow or silent client): dropped.
    Timeout,
    /// The client went away.
    Closed,
}

/// Reads a request head into `buf`; returns its length. The caller re-parses `buf[..len]`.
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<usize, HeadError> {
    let work = async {
        loop {
            if !buf.is_empty() {
                let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
                match httparse::Request::new(&mut headers).parse(buf) {
                    Ok(httparse::Status::Complete(n)) => return Ok(n),
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                    Err(_) => return Err(HeadError::Malformed),
                }
            }
            if buf.len() >= limits.max_bytes {
                return Err(HeadError::TooLarge);
            }
            if buf.len() == buf.capacity() {
                // Memory only for bytes that arrive: wait for them, then grow by doubling
                // (512, 1024, ...), so a client that stalls mid-head holds little.
                if stream.readable().await.is_err() {
                    return Err(HeadError::Closed);
                }
                buf.reserve(buf.capacity().max(512).min(limits.max_bytes - buf.len()));
            }
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Err(HeadError::Closed),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limits.timeout, work).await.unwrap_or(Err(HeadError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_percent_decoding() {
        assert_eq!(
            parse_query("room=caf%C3%A9&x=a+b&flag&bad=%zz"),
            [
                ("room".into(), "café".into()),
                ("x".into(), "a b".into()),
                ("flag".into(), "".into()),
                ("bad".into(), "%zz".into())
            ]
        );
        assert_eq!(percent_decode("/a%2Fb+c%", false), "/a/b+c%");
        assert_eq!(percent_decode("%4", true), "%4");
    }
}
