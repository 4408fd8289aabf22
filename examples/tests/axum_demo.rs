//! The axum-demo binary on one port: axum's own `GET /hello`, the chat page, and the demo's
//! echo, chat and detached classes through ws-server's Endpoint; SIGTERM closes an open
//! socket with 1001 and the process exits 0.

mod common;

use std::time::Duration;

use common::{Process, T, get};
use serde_json::Value;
use tokio::net::TcpStream;
use ws_session::{CloseCode, ConnectOptions, Error, Transport, WebSocket, connect};

fn axum_demo() -> Process {
    Process::start(
        env!("CARGO_BIN_EXE_axum-demo"),
        &["--addr", "127.0.0.1:0", "--detached-delay", "0.2"],
        "axum-demo listening on http://",
    )
}

async fn open(demo: &Process, path: &str) -> WebSocket<Transport> {
    let url = format!("ws://{}{path}", demo.addr);
    tokio::time::timeout(T, connect(&url, &ConnectOptions::default()))
        .await
        .unwrap_or_else(|_| panic!("{url}: no handshake within {T:?}"))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .0
}

async fn http_get(demo: &Process, path: &str) -> common::Response {
    let mut tcp = TcpStream::connect(&demo.addr).await.unwrap();
    get(&mut tcp, &demo.addr, path).await
}

async fn next_json(ws: &mut WebSocket<Transport>) -> Value {
    let msg = ws.read(0, T).await.unwrap();
    serde_json::from_str(msg.as_text().expect("a text message")).unwrap()
}

/// Reads until a message with `"Type": kind` arrives (bounded by count and by T per read).
async fn next_of(ws: &mut WebSocket<Transport>, kind: &str) -> Value {
    for _ in 0..20 {
        let v = next_json(ws).await;
        if v["Type"] == kind {
            return v;
        }
    }
    panic!("no {kind} message in 20");
}

async fn userlist_until(ws: &mut WebSocket<Transport>, want: &[&str]) {
    for _ in 0..20 {
        let list = next_of(ws, "userlist").await;
        let mut names: Vec<&str> =
            list["Users"].as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap()).collect();
        names.sort_unstable();
        if names == want {
            return;
        }
    }
    panic!("userlist never became {want:?}");
}

async fn join(demo: &Process, room: &str, name: &str) -> WebSocket<Transport> {
    let mut ws = open(demo, &format!("/csp/user/Chat.Server.cls?room={room}")).await;
    assert_eq!(next_json(&mut ws).await["Type"], "Status");
    ws.write(&format!(r#"{{"User": "{name}"}}"#)).await.unwrap();
    ws
}

#[tokio::test]
async fn hello_page_and_the_classes_on_one_port() {
    let demo = axum_demo();

    // axum's own route.
    let hello = http_get(&demo, "/hello").await;
    assert_eq!(hello.status, 200, "{hello:?}");
    assert_eq!(String::from_utf8_lossy(&hello.body), "hello");
    // The chat page, from the Endpoint behind axum's fallback.
    let page = http_get(&demo, "/").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.header("content-type").unwrap_or("").starts_with("text/html"), "{:?}", page.headers);
    assert_eq!(String::from_utf8(page.body).unwrap(), examples::chat::PAGE);

    // Echo: text and binary.
    let mut echo = open(&demo, "/csp/user/MyApp.MyWebSocketServer.cls").await;
    echo.write("héllo axum").await.unwrap();
    assert_eq!(echo.read(0, T).await.unwrap().as_text(), Some("héllo axum"));
    echo.write_binary(&[0, 1, 2, 255]).await.unwrap();
    assert_eq!(echo.read(0, T).await.unwrap().as_bytes(), [0, 1, 2, 255]);
    echo.end_server().await.unwrap();

    // Chat: two clients in one room see each other's lines.
    let mut alice = join(&demo, "axum", "Alice").await;
    userlist_until(&mut alice, &["Alice"]).await;
    let mut bob = join(&demo, "axum", "Bob").await;
    userlist_until(&mut bob, &["Alice", "Bob"]).await;
    userlist_until(&mut alice, &["Alice", "Bob"]).await;
    alice.write(r#"{"Message": "hi Bob ✓"}"#).await.unwrap();
    for ws in [&mut alice, &mut bob] {
        let line = next_of(ws, "Chat").await;
        assert_eq!(
            (line["Message"].as_str(), line["User"].as_str(), line["Room"].as_str()),
            (Some("hi Bob ✓"), Some("Alice"), Some("axum"))
        );
    }
    bob.write(r#"{"Message": "hi Alice"}"#).await.unwrap();
    for ws in [&mut alice, &mut bob] {
        let line = next_of(ws, "Chat").await;
        assert_eq!((line["Message"].as_str(), line["User"].as_str()), (Some("hi Alice"), Some("Bob")));
    }

    // Detached: the worker opens the socket by its id (open_server) and talks first.
    let mut detached = open(&demo, "/csp/user/MyApp.Detached.cls").await;
    let greeting = detached.read(0, T).await.unwrap();
    let greeting = greeting.as_text().expect("a text greeting");
    let id = greeting
        .strip_prefix("Hello from a detached task, socket ")
        .and_then(|rest| rest.strip_suffix(". Say something:"))
        .unwrap_or_else(|| panic!("greeting: {greeting:?}"));
    assert!(id.parse::<ws_server::WebSocketId>().is_ok(), "not a WebSocketId: {id:?}");
    detached.write("hi worker").await.unwrap();
    assert_eq!(detached.read(0, T).await.unwrap().as_text(), Some("You said: hi worker"));
    match detached.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("the worker's end_server: {other:?}"),
    }
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut demo = axum_demo();
    let mut echo = open(&demo, "/csp/user/MyApp.MyWebSocketServer.cls").await;
    echo.write("before").await.unwrap();
    assert_eq!(echo.read(0, T).await.unwrap().as_text(), Some("before"));

    demo.terminate();
    match echo.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::GOING_AWAY),
        other => panic!("after SIGTERM: {other:?}"),
    }
    let status = demo.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "axum-demo exited with {status}");
}
