//! Server classes inside hyper and axum: [`Endpoint::upgrade`].

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::{Response, StatusCode, Version};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ws_proto::httparse;
use ws_session::Transport;

use crate::Endpoint;
use crate::lifecycle::run_socket;
use crate::request::Request;
use crate::slot::{Pending, Slot};
use crate::upgrade::{Answer, decide};

impl Endpoint {
    /// Answers an HTTP request from hyper or axum the way the server's own listener does: a
    /// WebSocket upgrade to a registered class or route gets its `on_pre_server` and the
    /// `101`, then the socket runs on a task of its own once hyper hands the connection
    /// over; a request for a registered page gets the page; anything else gets the same
    /// error answers (404, 400, 403, 426, 503...). The request's `Extensions` must carry
    /// hyper's upgrade (they do when it comes from hyper's or axum's server).
    ///
    /// The peer address is taken from a `SocketAddr` in the request's extensions when there
    /// is one; [`upgrade_from`](Endpoint::upgrade_from) takes it explicitly (axum:
    /// `ConnectInfo`).
    ///
    /// In axum, as a fallback (or `any(...)` on the class routes) next to its own handlers:
    ///
    /// ```no_run
    /// # use ws_server::{Connection, Error, WebSocketServer, async_trait};
    /// # struct Echo;
    /// # #[async_trait] impl WebSocketServer for Echo {
    /// #     async fn server(&mut self, _: &mut Connection) -> Result<(), Error> { Ok(()) }
    /// # }
    /// # async fn run() -> std::io::Result<()> {
    /// let endpoint = ws_server::Server::builder().class("user", "MyApp.Echo", || Echo).build()?;
    /// let app = axum::Router::new()
    ///     .route("/hello", axum::routing::get(|| async { "hello" }))
    ///     .fallback(move |req: axum::extract::Request| {
    ///         let endpoint = endpoint.clone();
    ///         async move { endpoint.upgrade(req).await }
    ///     });
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app).await
    /// # }
    /// ```
    pub async fn upgrade<B>(&self, request: http::Request<B>) -> Response<Full<Bytes>> {
        let peer = request.extensions().get::<SocketAddr>().copied();
        self.upgrade_from(request, peer).await
    }

    /// [`upgrade`](Endpoint::upgrade) with the peer's address.
    pub async fn upgrade_from<B>(
        &self,
        mut request: http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Full<Bytes>> {
        let shared = &self.shared;
        if shared.stop.is_cancelled() {
            return into_response(Answer::busy());
        }
        // The same limits as the listener: a place under max_connections for the socket's
        // life, one under max_pending_handshakes until the 101.
        let Some(slot) = Slot::take(shared) else { return into_response(Answer::busy()) };
        let Some(pending) = Pending::take(&slot) else { return into_response(Answer::busy()) };
        let on_upgrade = hyper::upgrade::on(&mut request);
        let (parts, _body) = request.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let mut headers: Vec<httparse::Header<'_>> = parts
            .headers
            .iter()
            .map(|(name, value)| httparse::Header { name: name.as_str(), value: value.as_bytes() })
            .collect();
        // HTTP/2's extended CONNECT (RFC 8441) is not supported: such a request fails
        // ws-proto's checks (405 or 400).
        let parsed = httparse::Request {
            method: Some(parts.method.as_str()),
            path: Some(&target),
            version: match parts.version {
                Version::HTTP_11 => Some(1),
                Version::HTTP_10 => Some(0),
                _ => None,
            },
            headers: &mut headers,
        };
        let request = Request::new(parts.method.clone(), parts.uri.clone(), parts.headers.clone(), peer);
        let upgrade = match decide(shared, &parsed, request).await {
            Ok(upgrade) => upgrade,
            Err(answer) => return into_response(answer),
        };
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(UPGRADE, HeaderValue::from_static("websocket"))
            .header(CONNECTION, HeaderValue::from_static("Upgrade"))
            .header(SEC_WEBSOCKET_ACCEPT, ws_proto::accept_key(&upgrade.key));
        if let Some(protocol) = &upgrade.protocol {
            response = response.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol.as_str());
        }
        if let Some(cookie) = &upgrade.set_cookie {
            response = response.header(http::header::SET_COOKIE, cookie.as_str());
        }
        if let Some(agreed) = &upgrade.deflate {
            response = response.header(http::header::SEC_WEBSOCKET_EXTENSIONS, agreed.response.as_str());
        }
        let Ok(response) = response.body(Full::new(Bytes::new())) else {
            return into_response(Answer::text(500, "internal error\n"));
        };
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + slot.config.request_timeout;
            let upgraded = tokio::select! {
                upgraded = tokio::time::timeout_at(deadline, on_upgrade) => upgraded,
                _ = slot.stop.cancelled() => return,
            };
            let upgraded = match upgraded {
                Ok(Ok(upgraded)) => upgraded,
                Ok(Err(e)) => {
                    tracing::debug!(?peer, error = %e, "hyper did not hand over the upgraded connection");
                    return;
                }
                Err(_) => return,
            };
            drop(pending);
            let stream = Transport::boxed(TokioIo::new(upgraded));
            let accepted = upgrade.into_accepted(stream, BytesMut::new(), &slot);
            run_socket(accepted, slot).await;
        });
        response
    }
}

/// An [`Answer`] as hyper's response.
fn into_response(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(if answer.head_only { Bytes::new() } else { answer.body }));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&answer.content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    for (name, value) in answer.headers {
        // `HeaderName` takes the names in any case and keeps them in lower case.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            headers.append(name, value);
        }
    }
    response
}
