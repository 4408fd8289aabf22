//! The parsed upgrade request a server class sees in `on_pre_server`, on the `http` crate's
//! types (the same a hyper or axum application holds).

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ws_proto::httparse;

/// A request as the server class sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// The method (`GET`).
    pub method: Method,
    /// The request target as sent (path and query).
    pub uri: Uri,
    /// Every header (values that are not UTF-8 stay bytes).
    pub headers: HeaderMap,
    /// The path, without the query string, percent-decoded.
    pub path: String,
    /// Query parameters (`application/x-www-form-urlencoded`, decoded), in order.
    pub query: Vec<(String, String)>,
    /// The client's address.
    pub peer_addr: Option<SocketAddr>,
}

impl Request {
    /// A request from the `http` crate's parts (from hyper or axum, say).
    pub fn new(method: Method, uri: Uri, headers: HeaderMap, peer_addr: Option<SocketAddr>) -> Request {
        let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
        let query = uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Request { method, uri, headers, path, query, peer_addr }
    }

    /// The raw query string (after `?`), if any.
    pub fn query_string(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// The first query parameter named `name` (e.g. `room` in `?room=lobby`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The cookie named `name`, from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// The `Origin` header (browsers always send one).
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// Subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> Vec<&str> {
        self.tokens(http::header::SEC_WEBSOCKET_PROTOCOL).collect()
    }

    /// Does this request ask for a WebSocket upgrade?
    pub fn is_upgrade(&self) -> bool {
        self.tokens(http::header::UPGRADE).any(|t| t.eq_ignore_ascii_case("websocket"))
    }

    /// The comma-separated tokens of every `name` header (RFC 7230 list syntax).
    fn tokens(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        ws_proto::list_tokens(self.headers.get_all(name).iter().map(HeaderValue::as_bytes))
    }

    pub(crate) fn from_parsed(req: &httparse::Request<'_, '_>, peer_addr: Option<SocketAddr>) -> Request {
        let method = req.method.and_then(|m| Method::from_bytes(m.as_bytes()).ok()).unwrap_or_default();
        // A target `http` cannot represent (a rare form httparse lets through) reads as `/`.
        let uri = req.path.and_then(|p| p.parse().ok()).unwrap_or_else(|| Uri::from_static("/"));
        let mut headers = HeaderMap::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
            {
                headers.append(name, value);
            }
        }
        Request::new(method, uri, headers, peer_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_cookies_and_tokens() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1; WSSESSIONID=abc"));
        headers.append("cookie", HeaderValue::from_static("b=\"2\""));
        headers.append("upgrade", HeaderValue::from_static("h2c, WebSocket"));
        headers.append("sec-websocket-protocol", HeaderValue::from_static("chat, , v2.chat"));
        let uri: Uri = "/csp/caf%C3%A9/X.cls?room=caf%C3%A9&x=a+b&flag&bad=%zz".parse().unwrap();
        let r = Request::new(Method::GET, uri, headers, None);
        assert_eq!(r.path, "/csp/café/X.cls");
        assert_eq!(r.query_param("room"), Some("café"));
        assert_eq!(r.query_param("x"), Some("a b"));
        assert_eq!(r.query_param("flag"), Some(""));
        assert_eq!(r.query_param("bad"), Some("%zz"));
        assert_eq!(r.cookie("WSSESSIONID").as_deref(), Some("abc"));
        assert_eq!(r.cookie("b").as_deref(), Some("\"2\""));
        assert_eq!(r.cookie("c"), None);
        assert!(r.is_upgrade());
        assert_eq!(r.protocols(), ["chat", "v2.chat"]);
    }
}
