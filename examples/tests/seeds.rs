//! The seeds' programs end to end, with the ws-session client over loopback: echo (data,
//! timeout message, `exit`), chat (four clients, two rooms), detached (open by id).

use std::time::Duration;

use examples::chat::ChatServer;
use examples::detached::{Detached, worker};
use examples::echo::MyWebSocketServer;
use serde_json::Value;
use ws_server::{CloseCode, Error, OpenError, Registry, Server, WebSocketId};
use ws_session::{ConnectOptions, Transport, WebSocket, connect};

const T: Duration = Duration::from_secs(10);

struct Demo {
    addr: std::net::SocketAddr,
    registry: Registry,
}

async fn demo(echo_timeout: Duration, detached_delay: Duration) -> Demo {
    let (ids, queue) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::builder()
        .class("user", "MyApp.MyWebSocketServer", move || MyWebSocketServer { timeout: echo_timeout })
        .class("user", "Chat.Server", ChatServer::default)
        .class("user", "MyApp.Detached", move || Detached::new(ids.clone()))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let demo = Demo { addr: server.local_addr(), registry: server.registry() };
    tokio::spawn(worker(server.registry(), queue, detached_delay, Duration::from_secs(5)));
    tokio::spawn(server.run());
    demo
}

async fn open(demo: &Demo, path: &str) -> WebSocket<Transport> {
    connect(&format!("ws://{}{}", demo.addr, path), &ConnectOptions::default()).await.unwrap().0
}

#[tokio::test]
async fn echo_echoes_times_out_and_exits() {
    let d = demo(Duration::from_millis(300), Duration::ZERO).await;
    let mut ws = open(&d, "/csp/user/MyApp.MyWebSocketServer.cls").await;
    ws.write("héllo").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("héllo"));
    ws.write_binary(&[0, 1, 2]).await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_bytes(), [0, 1, 2]);
    // Silence: the server's read times out and it says so, with a time.
    let timed_out = ws.read(0, T).await.unwrap();
    let text = timed_out.as_text().unwrap();
    let when = text.strip_prefix("Server timed-out at ").expect(text);
    assert_eq!(when.len(), "YYYY-MM-DD HH:MM:SS".len(), "{when}");
    // The socket is still fine after the timeout.
    ws.write("again").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("again"));
    ws.write("exit").await.unwrap();
    match ws.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
}

async fn next_json(ws: &mut WebSocket<Transport>) -> Value {
    let msg = ws.read(0, T).await.unwrap();
    serde_json::from_str(msg.as_text().unwrap()).unwrap()
}

/// Reads until a message of `kind` arrives (skipping others), bounded by count.
async fn next_of(ws: &mut WebSocket<Transport>, kind: &str) -> Value {
    for _ in 0..20 {
        let v = next_json(ws).await;
        if v["Type"] == kind {
            return v;
        }
    }
    panic!("no {kind} message");
}

fn names(userlist: &Value) -> Vec<String> {
    userlist["Users"].as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap().to_string()).collect()
}

/// Joins `room`: returns the socket, its WSID (from Status, which comes first).
async fn join(d: &Demo, room: &str) -> (WebSocket<Transport>, String) {
    let mut ws = open(d, &format!("/csp/user/Chat.Server.cls?room={room}")).await;
    let status = next_json(&mut ws).await;
    assert_eq!(status["Type"], "Status");
    let wsid = status["WSID"].as_str().unwrap().to_string();
    assert!(wsid.parse::<WebSocketId>().is_ok());
    (ws, wsid)
}

/// Renames and waits until `ws` sees a userlist containing exactly `expect`.
async fn userlist_until(ws: &mut WebSocket<Transport>, expect: &[&str]) {
    for _ in 0..20 {
        let list = next_of(ws, "userlist").await;
        let mut got = names(&list);
        got.sort();
        let mut want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        want.sort();
        if got == want {
            return;
        }
    }
    panic!("userlist never became {expect:?}");
}

#[tokio::test]
async fn chat_four_clients_two_rooms() {
    let d = demo(Duration::from_secs(10), Duration::ZERO).await;
    let (mut a, a_id) = join(&d, "red").await;
    let first = next_of(&mut a, "userlist").await;
    assert_eq!(names(&first).len(), 1);
    assert!(names(&first)[0].starts_with("Guest-"), "unnamed users get a generated name");
    a.write(r#"{"User": "Alice"}"#).await.unwrap();
    userlist_until(&mut a, &["Alice"]).await;

    let (mut b, _) = join(&d, "red").await;
    b.write(r#"{"User": "Bob"}"#).await.unwrap();
    userlist_until(&mut b, &["Alice", "Bob"]).await;
    userlist_until(&mut a, &["Alice", "Bob"]).await;

    let (mut c, _) = join(&d, "blue").await;
    c.write(r#"{"User": "Carol"}"#).await.unwrap();
    userlist_until(&mut c, &["Carol"]).await;
    let (mut e, _) = join(&d, "blue").await;
    e.write(r#"{"User": "Eve"}"#).await.unwrap();
    userlist_until(&mut e, &["Carol", "Eve"]).await;
    userlist_until(&mut c, &["Carol", "Eve"]).await;

    // A chat line reaches everyone in the room, the sender included, and nobody else.
    a.write(r#"{"Message": "hello red ✓"}"#).await.unwrap();
    for ws in [&mut a, &mut b] {
        let line = next_of(ws, "Chat").await;
        assert_eq!(line["Message"], "hello red ✓");
        assert_eq!(line["User"], "Alice");
        assert_eq!(line["Room"], "red");
        assert_eq!(line["WSID"], a_id.as_str());
        let sent = line["Sent"].as_str().unwrap();
        assert_eq!(sent.len(), 19, "{sent}");
        assert_eq!(&sent[4..5], "-");
    }
    e.write(r#"{"Message": "hello blue"}"#).await.unwrap();
    for ws in [&mut c, &mut e] {
        let line = next_of(ws, "Chat").await;
        assert_eq!(
            (line["Message"].as_str(), line["User"].as_str(), line["Room"].as_str()),
            (Some("hello blue"), Some("Eve"), Some("blue"))
        );
    }
    // Red saw nothing from blue: its next message is the one sent after this point.
    b.write(r#"{"Message": "second red"}"#).await.unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(next_of(ws, "Chat").await["Message"], "second red");
    }
    // A rename is announced to the room, never broadcast as chat.
    b.write(r#"{"User": "Robert"}"#).await.unwrap();
    userlist_until(&mut a, &["Alice", "Robert"]).await;
    // Leaving updates the room's list.
    b.end_server().await.unwrap();
    userlist_until(&mut a, &["Alice"]).await;
    e.end_server().await.unwrap();
    userlist_until(&mut c, &["Carol"]).await;
    // Blue never got red's lines and red never got blue's (checked by content above).
    c.write(r#"{"Message": "last"}"#).await.unwrap();
    assert_eq!(next_of(&mut c, "Chat").await["Message"], "last");
}

#[tokio::test]
async fn detached_socket_driven_from_another_task() {
    let d = demo(Duration::from_secs(10), Duration::from_millis(50)).await;
    let mut ws = open(&d, "/csp/user/MyApp.Detached.cls").await;
    // server() returned at once, yet the socket is alive: the worker writes first.
    let greeting = ws.read(0, T).await.unwrap();
    assert!(greeting.as_text().unwrap().starts_with("Hello from a detached task"), "{greeting:?}");
    let id: WebSocketId = d.registry.list().iter().find(|i| i.shared).unwrap().id;
    assert!(greeting.as_text().unwrap().contains(&id.to_string()));
    ws.write("hi worker").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("You said: hi worker"));
    match ws.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
    // Gone from the registry; an echo socket is dedicated.
    for _ in 0..100 {
        if matches!(d.registry.open_server(&id).await, Err(OpenError::NotFound)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.registry.open_server(&id).await.unwrap_err(), OpenError::NotFound);
    let _echo = open(&d, "/csp/user/MyApp.MyWebSocketServer.cls").await;
    for _ in 0..100 {
        if !d.registry.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let echo_id = d.registry.list()[0].id;
    assert_eq!(d.registry.open_server(&echo_id).await.unwrap_err(), OpenError::NotShared);
}
