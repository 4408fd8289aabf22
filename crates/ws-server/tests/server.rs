//! ws-server over loopback: HTTP limits and answers, routing, the class lifecycle, sessions,
//! shared sockets, broadcast and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_proto::HandshakeError;
use ws_server::{
    CloseCode, Connection, Error, OpenError, OriginPolicy, PostServer, PreServer, Registry, Reject, Server,
    ServerBuilder, WebSocketId, WebSocketServer, async_trait,
};
use ws_session::{ConnectOptions, connect};

const T: Duration = Duration::from_secs(10);

/// Echoes until closed; writes its ids first when asked with `?hello=1`.
#[derive(Default)]
struct Echo {
    hello: bool,
}

#[async_trait]
impl WebSocketServer for Echo {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        self.hello = pre.query("hello").is_some();
        if pre.query("token") == Some("bad") {
            return Err(Reject::forbidden());
        }
        if let Some(p) = pre.request().protocols().into_iter().find(|p| p.starts_with("echo.")) {
            let p = p.to_string();
            pre.set_protocol(&p);
        }
        Ok(())
    }

    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        if self.hello {
            ws.write(&format!("{} {}", ws.web_socket_id(), ws.session_id())).await?;
        }
        loop {
            let msg = ws.read(0, T).await?;
            if msg.as_text() == Some("panic") {
                panic!("asked to panic");
            }
            ws.write_message(&msg).await?;
        }
    }
}

/// Counts `on_post_server` calls and remembers the last one.
#[derive(Clone, Default)]
struct Counter {
    posts: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<PostServer>>>,
}

struct Counted {
    inner: Echo,
    counter: Counter,
    shared: bool,
}

#[async_trait]
impl WebSocketServer for Counted {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        pre.set_shared_connection(self.shared);
        self.inner.on_pre_server(pre).await
    }
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        if self.shared {
            return Ok(()); // the socket lives on in the registry
        }
        self.inner.server(ws).await
    }
    async fn on_post_server(&mut self, post: &PostServer) {
        self.counter.posts.fetch_add(1, Ordering::SeqCst);
        *self.counter.last.lock().unwrap() = Some(post.clone());
    }
}

impl Counter {
    /// A factory of `Counted` echo instances reporting to this counter.
    fn dedicated(&self) -> impl Fn() -> Counted + Send + Sync + 'static {
        let counter = self.clone();
        move || Counted { inner: Echo::default(), counter: counter.clone(), shared: false }
    }
}

struct Running {
    addr: std::net::SocketAddr,
    registry: Registry,
    shutdown: ws_server::ShutdownHandle,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

async fn start(builder: ServerBuilder) -> Running {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let running = Running {
        addr: server.local_addr(),
        registry: server.registry(),
        shutdown: server.shutdown_handle(),
    };
    tokio::spawn(server.run());
    running
}

/// A server builder with short timeouts and a small request head limit.
fn quick() -> ServerBuilder {
    Server::builder()
        .request_timeout(Duration::from_millis(300))
        .max_request_head(4096, 64)
        .shutdown_timeout(Duration::from_secs(3))
}

async fn default_server() -> Running {
    start(quick().class("user", "Test.Echo", Echo::default).route("/echo", Echo::default)).await
}

async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut resp)).await.unwrap().unwrap();
    String::from_utf8_lossy(&resp).into_owned()
}

fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn class_from_url_and_plain_route() {
    let s = default_server().await;
    for path in ["/csp/user/Test.Echo.cls", "/echo"] {
        let (mut ws, _) = connect(&s.url(path), &ConnectOptions::default()).await.unwrap();
        ws.write("hi").await.unwrap();
        assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("hi"));
        ws.end_server().await.unwrap();
    }
}

#[tokio::test]
async fn unknown_class_and_page_are_404() {
    let s = default_server().await;
    match connect(&s.url("/csp/user/No.Such.cls"), &ConnectOptions::default()).await {
        Err(Error::Handshake(HandshakeError::Status(404))) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    let resp = raw_exchange(s.addr, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

#[tokio::test]
async fn bad_handshakes_get_400_426_431() {
    let s = default_server().await;
    let no_key = upgrade_request("/echo", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(raw_exchange(s.addr, no_key.as_bytes()).await.starts_with("HTTP/1.1 400"));
    let garbage = raw_exchange(s.addr, b"\x00\x01 nonsense\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let v8 = upgrade_request("/echo", "").replace("Version: 13", "Version: 8");
    let resp = raw_exchange(s.addr, v8.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 426") && resp.contains("Sec-WebSocket-Version: 13\r\n"), "{resp}");
    let huge = upgrade_request("/echo", &format!("X-Big: {}\r\n", "a".repeat(8000)));
    assert!(raw_exchange(s.addr, huge.as_bytes()).await.starts_with("HTTP/1.1 431"));
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert!(
        raw_exchange(s.addr, upgrade_request("/echo", &many).as_bytes()).await.starts_with("HTTP/1.1 431")
    );
}

#[tokio::test]
async fn slow_loris_is_dropped_after_the_request_timeout() {
    let s = default_server().await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpg").await.unwrap();
    let started = std::time::Instant::now();
    let mut resp = Vec::new();
    // The server answers 408 and closes; the read ends within the bound, not never.
    tokio::time::timeout(T, c.read_to_end(&mut resp)).await.expect("dropped").unwrap();
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 408"));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Meanwhile the server kept serving others.
    let (mut ws, _) = connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap();
    ws.write("alive").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("alive"));
}

#[tokio::test]
async fn on_pre_server_rejects_with_403_and_chooses_the_subprotocol() {
    let s = default_server().await;
    match connect(&s.url("/echo?token=bad"), &ConnectOptions::default()).await {
        Err(Error::Handshake(HandshakeError::Status(403))) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    let options = ConnectOptions::default().protocol("chat").protocol("echo.v1");
    let (_ws, resp) = connect(&s.url("/echo"), &options).await.unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("echo.v1"));
}

#[tokio::test]
async fn origin_allow_list() {
    let s = start(
        Server::builder()
            .route("/echo", Echo::default)
            .origins(OriginPolicy::AllowList(vec!["http://good.example".into()])),
    )
    .await;
    let with_origin = |o: &str| ConnectOptions::default().header("Origin", o);
    assert!(connect(&s.url("/echo"), &with_origin("http://good.example")).await.is_ok());
    match connect(&s.url("/echo"), &with_origin("http://evil.example")).await {
        Err(Error::Handshake(HandshakeError::Status(403))) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn session_cookie_issued_and_reused_and_ids_unique() {
    let s = start(Server::builder().route("/echo", Echo::default).page("/", "text/html", "<p>hi</p>")).await;
    let page = raw_exchange(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.ends_with("<p>hi</p>"), "{page}");
    let cookie =
        page.lines().find_map(|l| l.strip_prefix("Set-Cookie: WSSESSIONID=")).expect("a session cookie");
    let session = cookie.split(';').next().unwrap().to_string();

    let with_cookie = ConnectOptions::default().header("Cookie", &format!("WSSESSIONID={session}"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (mut ws, resp) = connect(&s.url("/echo?hello=1"), &with_cookie).await.unwrap();
        assert!(resp.header("Set-Cookie").is_none(), "no new cookie when one was sent");
        let hello = ws.read(0, T).await.unwrap();
        let (id, sid) = hello.as_text().unwrap().split_once(' ').unwrap();
        assert_eq!(sid, session);
        ids.push(id.parse::<WebSocketId>().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // Without a cookie the 101 issues one.
    let (_ws, resp) = connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap();
    assert!(resp.header("Set-Cookie").unwrap().starts_with("WSSESSIONID="));
}

#[tokio::test]
async fn on_post_server_exactly_once_when_the_client_vanishes() {
    let counter = Counter::default();
    let s = start(Server::builder().route("/c", counter.dedicated())).await;
    let (ws, _) = connect(&s.url("/c"), &ConnectOptions::default()).await.unwrap();
    wait_until("registration", || s.registry.len() == 1).await;
    drop(ws); // TCP gone, no Close frame
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(counter.posts.load(Ordering::SeqCst), 1);
    let post = counter.last.lock().unwrap().clone().unwrap();
    assert_eq!(post.close.0, CloseCode::ABNORMAL);
    assert!(post.panic.is_none());
    assert!(s.registry.is_empty());
}

#[tokio::test]
async fn a_panic_in_server_is_caught_and_on_post_server_still_runs() {
    let counter = Counter::default();
    let s = start(Server::builder().route("/c", counter.dedicated())).await;
    let (mut other, _) = connect(&s.url("/c"), &ConnectOptions::default()).await.unwrap();
    let (mut ws, _) = connect(&s.url("/c"), &ConnectOptions::default()).await.unwrap();
    ws.write("panic").await.unwrap();
    // The panicking socket is closed (1000 after the catch), the other one is untouched.
    assert!(ws.read(0, T).await.unwrap_err().is_closed());
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
    let post = counter.last.lock().unwrap().clone().unwrap();
    assert!(post.panic.is_some());
    assert_eq!(post.panic.as_deref(), Some("asked to panic"));
    assert!(post.error.is_none());
    other.write("still here").await.unwrap();
    assert_eq!(other.read(0, T).await.unwrap().as_text(), Some("still here"));
}

#[tokio::test]
async fn open_server_not_found_not_shared_and_shared() {
    let counter = Counter::default();
    let c = counter.clone();
    let s = start(Server::builder().route("/dedicated", Echo::default).route("/shared", move || Counted {
        inner: Echo::default(),
        counter: c.clone(),
        shared: true,
    }))
    .await;
    assert_eq!(s.registry.open_server(&WebSocketId::new()).await.unwrap_err(), OpenError::NotFound);
    let (_d, _) = connect(&s.url("/dedicated"), &ConnectOptions::default()).await.unwrap();
    let (mut client, _) = connect(&s.url("/shared"), &ConnectOptions::default()).await.unwrap();
    wait_until("both registered", || s.registry.len() == 2).await;
    let list = s.registry.list();
    let dedicated = list.iter().find(|i| !i.shared).unwrap().id;
    let shared = list.iter().find(|i| i.shared).unwrap().id;
    assert_eq!(s.registry.open_server(&dedicated).await.unwrap_err(), OpenError::NotShared);

    // From another task: write, read (with len), timeout, end.
    let registry = s.registry.clone();
    let worker = tokio::spawn(async move {
        let h = registry.open_server(&shared).await.unwrap();
        h.write("hello from elsewhere").await.unwrap();
        assert!(h.read(5, Duration::from_millis(100)).await.unwrap_err().is_timeout());
        let first = h.read(5, T).await.unwrap();
        let rest = h.read(100, T).await.unwrap();
        h.end_server().await.unwrap();
        (first.as_text().unwrap().to_string(), rest.as_text().unwrap().to_string())
    });
    assert_eq!(client.read(0, T).await.unwrap().as_text(), Some("hello from elsewhere"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.write("reply text").await.unwrap();
    match client.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
    assert_eq!(worker.await.unwrap(), ("reply".to_string(), " text".to_string()));
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
    assert_eq!(s.registry.open_server(&shared).await.unwrap_err(), OpenError::NotFound);
}

#[tokio::test]
async fn idle_shared_socket_closed_after_the_session_timeout() {
    let counter = Counter::default();
    let c = counter.clone();
    let s = start(quick().session_timeout(Duration::from_millis(300)).route("/shared", move || Counted {
        inner: Echo::default(),
        counter: c.clone(),
        shared: true,
    }))
    .await;
    let (mut client, _) = connect(&s.url("/shared"), &ConnectOptions::default()).await.unwrap();
    match client.read(0, T).await {
        Err(Error::Closed { code, reason }) => {
            assert_eq!(code, CloseCode::GOING_AWAY);
            assert_eq!(reason, "session timeout");
        }
        other => panic!("{other:?}"),
    }
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn broadcast_reaches_every_socket_and_graceful_shutdown_closes_with_1001() {
    let s = default_server().await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap().0);
    }
    wait_until("registration", || s.registry.len() == 5).await;
    assert_eq!(s.registry.broadcast_all("to everyone"), 5);
    let ids: Vec<WebSocketId> = s.registry.list().into_iter().map(|i| i.id).collect();
    assert!(s.registry.subscribe(&ids[0], "room").await);
    assert!(s.registry.subscribe(&ids[1], "room").await);
    assert_eq!(s.registry.publish("room", "to the room"), 2);
    for c in clients.iter_mut() {
        assert_eq!(c.read(0, T).await.unwrap().as_text(), Some("to everyone"));
    }
    let reading: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    match c.read(0, T).await {
                        Ok(m) => got.push(m.as_text().unwrap().to_string()),
                        Err(e) => return (got, e),
                    }
                }
            })
        })
        .collect();
    let left = s.shutdown.shutdown().await;
    assert_eq!(left, 0);
    let mut room_messages = 0;
    for r in reading {
        let (got, err) = r.await.unwrap();
        room_messages += got.iter().filter(|m| *m == "to the room").count();
        match err {
            Error::Closed { code, .. } => assert_eq!(code, CloseCode::GOING_AWAY),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(room_messages, 2);
    // No longer accepting.
    assert!(connect(&s.url("/echo"), &ConnectOptions::default()).await.is_err());
}

/// A raw client that did the handshake by hand (reads nothing more unless asked).
async fn raw_socket(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(upgrade_request(path, "").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tokio::time::timeout(T, c.read_exact(&mut b)).await.unwrap().unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    c
}

/// Reads server frames from a raw client until a Close (its code) or the end (None),
/// bounded by `T`.
async fn close_code_after_data(raw: &mut TcpStream) -> Option<u16> {
    let mut conn = ws_proto::Connection::new(ws_proto::Role::Client, ws_proto::Config::client(1));
    let mut buf = bytes::BytesMut::new();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        while let Some(event) = conn.poll_event(&mut buf).ok()? {
            if let ws_proto::Event::Close(frame) = event {
                return frame.map(|f| f.code.0);
            }
        }
        buf.reserve(64 * 1024);
        match tokio::time::timeout_at(deadline, raw.read_buf(&mut buf)).await {
            Ok(Ok(1..)) => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1008_and_its_queue_bounded() {
    let counter = Counter::default();
    let s = start(
        quick().max_queued_bytes(256 * 1024).max_write_buffer(64 * 1024).route("/echo", counter.dedicated()),
    )
    .await;
    let mut slow = raw_socket(s.addr, "/echo").await;
    let (mut good, _) = connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap();
    wait_until("registration", || s.registry.len() == 2).await;
    let ids: Vec<WebSocketId> = s.registry.list().into_iter().map(|i| i.id).collect();
    for id in &ids {
        assert!(s.registry.subscribe(id, "busy").await);
    }
    // 4,000 lines of 4 KB (16 MB) to the room; the good member reads them all, the slow one
    // nothing.
    let line = "x".repeat(4000);
    let mut seen = 0;
    for i in 0..4000 {
        s.registry.publish("busy", &line);
        if i % 16 == 15 {
            while seen < i + 1 {
                assert_eq!(good.read(0, T).await.unwrap().len(), 4000);
                seen += 1;
            }
        }
    }
    assert_eq!(s.registry.stats().slow_consumer_closes, 1);
    assert!(s.registry.stats().dropped_frames > 0, "{:?}", s.registry.stats());
    // The slow member finds a Close 1008 after the data it was sent.
    assert_eq!(close_code_after_data(&mut slow).await, Some(1008));
    drop(slow); // gone without its own Close: the server does not wait out the close timeout
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
    let post = counter.last.lock().unwrap().clone().unwrap();
    assert_eq!(post.close.0, CloseCode::POLICY);
    assert_eq!(s.registry.len(), 1, "the good member stays");
    good.write("still here").await.unwrap();
    assert_eq!(good.read(0, T).await.unwrap().as_text(), Some("still here"));
}

#[tokio::test]
async fn cross_site_origin_refused_by_default_same_host_and_no_origin_accepted() {
    let s = start(Server::builder().route("/echo", Echo::default)).await;
    let host = s.addr.to_string();
    let request = |origin: &str| {
        let extra = if origin.is_empty() { String::new() } else { format!("Origin: {origin}\r\n") };
        format!(
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    };
    let first_line = |r: String| r.lines().next().unwrap_or("").to_string();
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(request("http://evil.example").as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut resp)).await.unwrap().unwrap();
    assert_eq!(first_line(String::from_utf8_lossy(&resp).into()), "HTTP/1.1 403 Forbidden");
    for ok in [format!("http://{host}"), String::new()] {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(request(&ok).as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(T, c.read_exact(&mut head)).await.unwrap().unwrap();
        assert_eq!(&head, b"HTTP/1.1 101", "origin {ok:?}");
    }
}

#[tokio::test]
async fn handshakes_over_the_cap_get_503_and_the_server_keeps_serving() {
    let s =
        start(Server::builder().request_timeout(T).max_pending_handshakes(4).route("/echo", Echo::default))
            .await;
    let (mut ws, _) = connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /echo HTTP/1.1\r\n").await.unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = raw_exchange(s.addr, upgrade_request("/echo", "").as_bytes()).await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    // The socket it has is served meanwhile.
    ws.write("alive").await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("alive"));
    drop(stalled);
    let mut served = false;
    for _ in 0..100 {
        if connect(&s.url("/echo"), &ConnectOptions::default()).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "handshakes are taken again once the stalled ones are gone");
}

#[tokio::test]
async fn a_handshake_in_flight_at_shutdown_gets_503_and_shutdown_does_not_wait_for_it() {
    let s =
        start(Server::builder().shutdown_timeout(Duration::from_secs(8)).route("/echo", Echo::default)).await;
    let (mut ws, _) = connect(&s.url("/echo"), &ConnectOptions::default()).await.unwrap();
    let mut late = TcpStream::connect(s.addr).await.unwrap();
    late.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let shutdown = s.shutdown.clone();
    let stopping = tokio::spawn(async move { shutdown.shutdown().await });
    let mut resp = Vec::new();
    tokio::time::timeout(T, late.read_to_end(&mut resp)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 503"));
    match ws.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::GOING_AWAY),
        other => panic!("{other:?}"),
    }
    assert_eq!(stopping.await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(4), "shutdown waited {:?}", started.elapsed());
}

#[tokio::test]
async fn run_until_closes_every_socket_and_returns_after_on_post_server() {
    let counter = Counter::default();
    let server = Server::builder().route("/echo", counter.dedicated()).bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/echo", server.local_addr());
    let handle = server.shutdown_handle();
    let (stop, signal) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async move {
        let _ = signal.await;
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&url, &ConnectOptions::default()).await.unwrap().0);
    }
    let cancelled = tokio::spawn(async move { handle.cancelled().await });
    stop.send(()).unwrap();
    for mut c in clients {
        match c.read(0, T).await {
            Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::GOING_AWAY),
            other => panic!("{other:?}"),
        }
    }
    tokio::time::timeout(T, running).await.unwrap().unwrap().unwrap();
    // Returned only once every on_post_server had run, each seeing a clean 1001.
    assert_eq!(counter.posts.load(Ordering::SeqCst), 3);
    assert_eq!(counter.last.lock().unwrap().as_ref().unwrap().close.0, CloseCode::GOING_AWAY);
    tokio::time::timeout(T, cancelled).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_clean_close_is_no_error_in_on_post_server_and_a_protocol_error_is() {
    let counter = Counter::default();
    let s = start(Server::builder().route("/c", counter.dedicated())).await;
    // Echo's `server` returns the read's Err(Closed(1000)) with `?`: a normal end.
    let (mut ws, _) = connect(&s.url("/c"), &ConnectOptions::default()).await.unwrap();
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 1).await;
    let post = counter.last.lock().unwrap().clone().unwrap();
    assert_eq!(post.close, (CloseCode::NORMAL, "bye".to_string()));
    assert!(post.error.is_none(), "{:?}", post.error);
    // An unmasked client frame is a protocol error (1002): that one is reported.
    let mut raw = raw_socket(s.addr, "/c").await;
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    wait_until("on_post_server", || counter.posts.load(Ordering::SeqCst) == 2).await;
    let post = counter.last.lock().unwrap().clone().unwrap();
    let error = post.error.expect("a protocol error");
    assert_eq!(error.close_code(), Some(CloseCode::PROTOCOL), "{error}");
}

/// permessage-deflate through the listener: the default policy (no context kept either way),
/// a policy that keeps contexts under a per-socket memory bound, and compression turned off;
/// each time a 2 KB JSON message goes both ways intact.
#[tokio::test]
async fn deflate_policies_are_negotiated_and_messages_survive_them() {
    use ws_proto::DeflateConfig;
    let takeover = DeflateConfig::default().server_no_context_takeover(false);
    // Room for the client's context (48 KB) but not the server's compressor (380 KB).
    let bounded = takeover.clone().max_idle_memory(100_000);
    // A policy, and the (server_no_context_takeover, client_no_context_takeover) it agrees to.
    type Case = (Option<DeflateConfig>, Option<(bool, bool)>);
    let policies: [Case; 4] = [
        (Some(ws_server::default_deflate()), Some((true, true))),
        (Some(takeover), Some((false, false))),
        (Some(bounded), Some((true, false))),
        (None, None),
    ];
    let line = format!(r#"{{"Type":"Chat","Message":"{}","User":"alice"}}"#, "hello again ".repeat(170));
    for (policy, want) in policies {
        let running = start(quick().route("/echo", Echo::default).deflate(policy.clone())).await;
        // The client offers what a browser offers.
        let mut options = ConnectOptions::default();
        options.config =
            options.config.deflate(Some(DeflateConfig::default().server_no_context_takeover(false)));
        let (mut client, _) = connect(&running.url("/echo"), &options).await.unwrap();
        let agreed = client.deflate().map(|p| (p.server_no_context_takeover, p.client_no_context_takeover));
        assert_eq!(agreed, want, "policy {policy:?}");
        assert_eq!(client.compresses(line.len()), want.is_some());
        for _ in 0..3 {
            client.write(&line).await.unwrap();
            let echoed = tokio::time::timeout(T, client.read_message()).await.unwrap().unwrap();
            assert_eq!(echoed.as_text(), Some(line.as_str()), "policy {policy:?}");
        }
        drop(client);
        running.shutdown.shutdown().await;
    }
}
