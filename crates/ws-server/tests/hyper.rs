//! Server classes inside axum (the `hyper` feature): an axum Router serves its own route and
//! hands upgrades to the Endpoint of a server that also has its own listener. Both entries
//! share one registry (open_server across them), the same answers and the same shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_server::{
    Connection, Endpoint, Error, PreServer, Reject, Server, WebSocketId, WebSocketServer, async_trait,
};
use ws_session::{CloseCode, ConnectOptions, Transport, WebSocket, connect};

const T: Duration = Duration::from_secs(10);

/// A shared socket that tells its client its id, and whose peer address is seen.
struct Shared;

#[async_trait]
impl WebSocketServer for Shared {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        if pre.request().peer_addr.is_none_or(|p| !p.ip().is_loopback()) {
            return Err(Reject::forbidden());
        }
        pre.set_shared_connection(true);
        Ok(())
    }

    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        ws.write(&ws.web_socket_id().to_string()).await
    }
}

/// Reads ids and writes to each socket, opened by id from the registry.
struct Opener;

#[async_trait]
impl WebSocketServer for Opener {
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        loop {
            let msg = ws.read(0, T).await?;
            let id: WebSocketId =
                msg.as_text().unwrap_or("").parse().map_err(|e| Error::InvalidInput(format!("{e}")))?;
            let target = ws.registry().open_server(&id).await.map_err(Error::from)?;
            target.write("hello from the other entry").await?;
            ws.write("sent").await?;
        }
    }
}

fn app(endpoint: Endpoint) -> Router {
    Router::new().route("/hello", get(|| async { "hello" })).fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.upgrade_from(request, Some(peer)).await }
        },
    )
}

struct Both {
    listener: SocketAddr,
    axum: SocketAddr,
    stop: ws_server::ShutdownHandle,
}

async fn start() -> Both {
    let server = Server::builder()
        .class("user", "Test.Shared", || Shared)
        .route("/open", || Opener)
        .page("/page", "text/plain", "a page")
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let listener = server.local_addr();
    let endpoint = server.endpoint();
    let stop = server.shutdown_handle();
    tokio::spawn(server.run());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axum_addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(tcp, app(endpoint).into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    Both { listener, axum: axum_addr, stop }
}

async fn open(addr: SocketAddr, path: &str) -> WebSocket<Transport> {
    let url = format!("ws://{addr}{path}");
    tokio::time::timeout(T, connect(&url, &ConnectOptions::default())).await.unwrap().unwrap().0
}

async fn next_text(ws: &mut WebSocket<Transport>) -> String {
    let msg = tokio::time::timeout(T, ws.read(0, T)).await.expect("a message in time").unwrap();
    msg.as_text().unwrap().to_string()
}

/// One request and its whole answer (head and `content-length` bytes of body): hyper may
/// keep the connection open after it.
async fn http_get(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let complete = |out: &[u8]| {
        let text = String::from_utf8_lossy(out).to_ascii_lowercase();
        let Some(head_end) = text.find("\r\n\r\n") else { return false };
        let length = text[..head_end]
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        out.len() >= head_end + 4 + length
    };
    tokio::time::timeout(T, async {
        let mut buf = [0u8; 4096];
        while !complete(&out) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("answered in time");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn axum_route_and_classes_on_one_port_sharing_the_listeners_registry() {
    let both = start().await;
    // axum's own route and ws-server's page, on axum's port.
    let hello = http_get(both.axum, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(hello.starts_with("HTTP/1.1 200") && hello.ends_with("hello"), "{hello}");
    let page = http_get(both.axum, "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("a page"), "{page}");
    assert!(page.to_ascii_lowercase().contains("set-cookie: wssessionid="), "{page}");
    let missing =
        http_get(both.axum, "GET /csp/user/No.Such.cls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let old = "GET /csp/user/Test.Shared.cls HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    let old = http_get(both.axum, old).await;
    assert!(
        old.starts_with("HTTP/1.1 426") && old.to_ascii_lowercase().contains("sec-websocket-version: 13"),
        "{old}"
    );

    // A shared socket entered through axum, opened by id from a socket of the listener...
    let mut via_axum = open(both.axum, "/csp/user/Test.Shared.cls").await;
    let id = next_text(&mut via_axum).await;
    let mut listener_opener = open(both.listener, "/open").await;
    listener_opener.write(&id).await.unwrap();
    assert_eq!(next_text(&mut listener_opener).await, "sent");
    assert_eq!(next_text(&mut via_axum).await, "hello from the other entry");

    // ...and the other way round.
    let mut via_listener = open(both.listener, "/csp/user/Test.Shared.cls").await;
    let id = next_text(&mut via_listener).await;
    let mut axum_opener = open(both.axum, "/open").await;
    axum_opener.write(&id).await.unwrap();
    assert_eq!(next_text(&mut axum_opener).await, "sent");
    assert_eq!(next_text(&mut via_listener).await, "hello from the other entry");

    // One shutdown closes the sockets of both entries with 1001 (the clients answer the
    // Close while it waits).
    let stop = both.stop.clone();
    let shutdown = tokio::spawn(async move { stop.shutdown().await });
    for ws in [&mut via_axum, &mut via_listener, &mut listener_opener, &mut axum_opener] {
        match tokio::time::timeout(T, ws.read(0, T)).await.unwrap() {
            Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::GOING_AWAY),
            other => panic!("expected a 1001 close, got {other:?}"),
        }
    }
    assert_eq!(shutdown.await.unwrap(), 0, "connections left after shutdown");
    // And a new upgrade through axum is refused now.
    let late = http_get(
        both.axum,
        "GET /open HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(late.starts_with("HTTP/1.1 503"), "{late}");
}
