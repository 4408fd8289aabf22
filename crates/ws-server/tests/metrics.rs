//! Metrics and the admin page over loopback: `/metrics` scraped before and after a known
//! load (echo messages, a close with 4001, refused handshakes, a slow consumer, a shared
//! socket) must move by exactly that load; `/admin` answers 401 without the token.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_server::{
    CloseCode, Connection, Error, PreServer, Registry, Reject, Server, ServerBuilder, WebSocketServer,
    async_trait,
};
use ws_session::{ConnectOptions, connect};

const T: Duration = Duration::from_secs(10);

/// Echoes whole messages until closed; `?token=bad` is refused with 403; `?shared=1` makes
/// the socket shared (its driver task then does the reading and writing).
#[derive(Default)]
struct Echo {
    shared: bool,
}

#[async_trait]
impl WebSocketServer for Echo {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        if pre.query("token") == Some("bad") {
            return Err(Reject::forbidden());
        }
        self.shared = pre.query("shared").is_some();
        pre.set_shared_connection(self.shared);
        Ok(())
    }

    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        loop {
            let msg = ws.read(0, T).await?;
            ws.write_message(&msg).await?;
        }
    }
}

struct Running {
    addr: std::net::SocketAddr,
    registry: Registry,
}

async fn start(builder: ServerBuilder) -> Running {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let running = Running { addr: server.local_addr(), registry: server.registry() };
    tokio::spawn(server.run());
    running
}

fn builder() -> ServerBuilder {
    Server::builder()
        .route("/echo", Echo::default)
        .class("user", "Test.Echo", Echo::default)
        .shutdown_timeout(Duration::from_secs(3))
}

async fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    c.write_all(request.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut resp)).await.unwrap().unwrap();
    let resp = String::from_utf8(resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// `/metrics` as a map from each sample (name and labels, as written) to its value.
async fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Scrapes until `key` reads `want` (sockets close asynchronously), then returns the scrape.
async fn until(addr: std::net::SocketAddr, key: &str, want: f64) -> HashMap<String, f64> {
    for _ in 0..200 {
        let m = scrape(addr).await;
        if value(&m, key) == want {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{key} never reached {want}: {:?}", scrape(addr).await.get(key));
}

/// The change of each of `keys` between two scrapes.
fn deltas(before: &HashMap<String, f64>, after: &HashMap<String, f64>, keys: &[&str]) -> Vec<f64> {
    keys.iter().map(|k| value(after, k) - value(before, k)).collect()
}

const ECHO_IN: &str = r#"ws_messages_received_total{class="/echo"}"#;
const ECHO_OUT: &str = r#"ws_messages_sent_total{class="/echo"}"#;
const ECHO_BYTES_IN: &str = r#"ws_bytes_received_total{class="/echo"}"#;
const ECHO_BYTES_OUT: &str = r#"ws_bytes_sent_total{class="/echo"}"#;
const ECHO_OPEN: &str = r#"ws_connections{class="/echo"}"#;
const ECHO_OPENED: &str = r#"ws_connections_opened_total{class="/echo"}"#;

#[tokio::test]
async fn echo_messages_bytes_sockets_and_close_codes_move_by_exactly_the_load() {
    let s = start(builder().metrics(true)).await;
    let before = scrape(s.addr).await;
    assert_eq!(value(&before, ECHO_OPEN), 0.0);
    assert!(before.contains_key(ECHO_IN), "every class is listed from the start");

    let (mut a, _) = connect(&format!("ws://{}/echo", s.addr), &ConnectOptions::default()).await.unwrap();
    let (mut b, _) = connect(&format!("ws://{}/echo", s.addr), &ConnectOptions::default()).await.unwrap();
    let open = until(s.addr, ECHO_OPEN, 2.0).await;
    assert_eq!(value(&open, ECHO_OPENED) - value(&before, ECHO_OPENED), 2.0);
    // 100 text messages of 37 bytes and 20 binary ones of 3000 bytes (written from their
    // own buffer), each echoed.
    let text = "x".repeat(37);
    for _ in 0..100 {
        a.write(&text).await.unwrap();
        assert_eq!(a.read(0, T).await.unwrap().len(), 37);
    }
    let binary = vec![7u8; 3000];
    for _ in 0..20 {
        b.write_binary(&binary).await.unwrap();
        assert_eq!(b.read(0, T).await.unwrap().len(), 3000);
    }
    a.end_server().await.unwrap();
    b.close(CloseCode(4001), "done").await.unwrap();
    let after = until(s.addr, ECHO_OPEN, 0.0).await;
    let after =
        until(s.addr, r#"ws_connections_closed_total{class="/echo",code="4001"}"#, 1.0).await.max(after);
    let bytes = (100 * 37 + 20 * 3000) as f64;
    assert_eq!(
        deltas(&before, &after, &[ECHO_IN, ECHO_OUT, ECHO_BYTES_IN, ECHO_BYTES_OUT, ECHO_OPENED]),
        [120.0, 120.0, bytes, bytes, 2.0]
    );
    assert_eq!(
        deltas(
            &before,
            &after,
            &[
                r#"ws_connections_closed_total{class="/echo",code="1000"}"#,
                r#"ws_connections_closed_total{class="/echo",code="4001"}"#,
                r#"ws_messages_received_total{class="Test.Echo"}"#,
            ]
        ),
        [1.0, 1.0, 0.0]
    );
}

trait Latest {
    fn max(self, other: Self) -> Self;
}

impl Latest for HashMap<String, f64> {
    /// The later of two scrapes: every counter at its larger value.
    fn max(mut self, other: Self) -> Self {
        for (k, v) in other {
            let e = self.entry(k).or_insert(v);
            *e = e.max(v);
        }
        self
    }
}

#[tokio::test]
async fn a_shared_socket_is_counted_once_by_its_driver() {
    let s = start(builder().metrics(true)).await;
    let before = scrape(s.addr).await;
    let (mut c, _) =
        connect(&format!("ws://{}/echo?shared=1", s.addr), &ConnectOptions::default()).await.unwrap();
    for i in 0..10 {
        c.write(&format!("message {i}")).await.unwrap(); // 9 bytes each
        c.read(0, T).await.unwrap();
    }
    c.end_server().await.unwrap();
    let after = until(s.addr, r#"ws_connections_closed_total{class="/echo",code="1000"}"#, 1.0).await;
    assert_eq!(
        deltas(&before, &after, &[ECHO_IN, ECHO_OUT, ECHO_BYTES_IN, ECHO_BYTES_OUT]),
        [10.0, 10.0, 90.0, 90.0]
    );
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_status_and_pages_are_not() {
    let s = start(builder().metrics(true)).await;
    let before = scrape(s.addr).await;
    let upgrade = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    for (request, status) in [
        (upgrade("/csp/user/No.Such.cls"), 404),
        (upgrade("/echo?token=bad"), 403),
        (upgrade("/echo?token=bad"), 403),
        (upgrade("/echo").replace("Version: 13", "Version: 8"), 426),
    ] {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await.unwrap();
        assert!(resp.starts_with(format!("HTTP/1.1 {status}").as_bytes()));
    }
    assert_eq!(get(s.addr, "/no-such-page", "").await.0, 404); // not an upgrade: not counted
    let after = scrape(s.addr).await;
    let keys = [404, 403, 426].map(|s| format!(r#"ws_handshake_failures_total{{status="{s}"}}"#));
    assert_eq!(deltas(&before, &after, &keys.each_ref().map(|k| k.as_str())), [1.0, 2.0, 1.0]);
}

#[tokio::test]
async fn a_slow_consumer_and_its_dropped_frames_are_counted() {
    let s = start(builder().metrics(true).max_queued_bytes(256 * 1024).max_write_buffer(64 * 1024)).await;
    let before = scrape(s.addr).await;
    // A client that never reads, in a room that gets 16 MB.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    until(s.addr, ECHO_OPEN, 1.0).await;
    let id = s.registry.list()[0].id;
    assert!(s.registry.subscribe(&id, "busy").await);
    let line = "x".repeat(4000);
    for _ in 0..4000 {
        s.registry.publish("busy", &line);
        if s.registry.stats().slow_consumer_closes == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        s.registry.publish("busy", &line);
    }
    drop(slow);
    let after = until(s.addr, r#"ws_connections_closed_total{class="/echo",code="1008"}"#, 1.0).await;
    assert_eq!(deltas(&before, &after, &["ws_slow_consumer_closes_total"]), [1.0]);
    assert!(value(&after, "ws_dropped_frames_total") >= 10.0, "{after:?}");
    assert_eq!(value(&after, ECHO_OPEN), 0.0);
}

#[tokio::test]
async fn rooms_are_counted_and_only_the_largest_are_named() {
    let s = start(builder().metrics(true)).await;
    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(connect(&format!("ws://{}/echo", s.addr), &ConnectOptions::default()).await.unwrap());
    }
    until(s.addr, ECHO_OPEN, 12.0).await;
    let ids: Vec<_> = s.registry.list().into_iter().map(|i| i.id).collect();
    // Room r0 has 12 members, r1 11, ... r11 one: 12 rooms, 10 named.
    for (i, id) in ids.iter().enumerate() {
        for room in 0..=i {
            s.registry.subscribe(id, &format!("r{room}")).await;
        }
    }
    let m = scrape(s.addr).await;
    assert_eq!(value(&m, "ws_rooms"), 12.0);
    assert_eq!(value(&m, r#"ws_room_members{room="r0"}"#), 12.0);
    assert_eq!(value(&m, r#"ws_room_members{room="r9"}"#), 3.0);
    assert_eq!(m.keys().filter(|k| k.starts_with("ws_room_members")).count(), 10);
}

#[tokio::test]
async fn metrics_are_off_by_default_and_endpoint_gives_the_text() {
    let s = start(builder()).await;
    assert_eq!(get(s.addr, "/metrics", "").await.0, 404);
    assert_eq!(get(s.addr, "/admin", "").await.0, 404);

    let endpoint = builder().metrics(true).build().unwrap();
    let text = endpoint.metrics_text().unwrap();
    assert!(text.contains("# TYPE ws_connections gauge\n"), "{text}");
    assert!(text.contains("ws_slow_consumer_closes_total 0\n"), "{text}");
    assert!(builder().build().unwrap().metrics_text().is_none());
}

#[tokio::test]
async fn the_admin_page_needs_its_token() {
    let s = start(builder().admin_token("s3cret")).await;
    assert_eq!(get(s.addr, "/admin", "").await.0, 401);
    assert_eq!(get(s.addr, "/admin?token=wrong", "").await.0, 401);
    assert_eq!(get(s.addr, "/admin/api/stats", "Authorization: Bearer s3cre\r\n").await.0, 401);
    let (status, page) = get(s.addr, "/admin?token=s3cret", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<canvas"), "{page}");
    // The admin page alone does not serve /metrics.
    assert_eq!(get(s.addr, "/metrics", "").await.0, 404);

    let (mut c, _) = connect(&format!("ws://{}/echo", s.addr), &ConnectOptions::default()).await.unwrap();
    c.write("hello").await.unwrap();
    c.read(0, T).await.unwrap();
    let id = s.registry.list()[0].id;
    s.registry.subscribe(&id, "blue").await;
    s.registry.set_label(&id, "Alice").await;
    let (status, stats) = get(s.addr, "/admin/api/stats", "Authorization: Bearer s3cret\r\n").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["sockets"], 1);
    let echo = stats["classes"].as_array().unwrap().iter().find(|c| c["class"] == "/echo").unwrap();
    assert_eq!((&echo["messages_in"], &echo["bytes_out"]), (&1.into(), &5.into()));
    assert_eq!(stats["top_rooms"][0]["room"], "blue");
    let (status, presence) = get(s.addr, "/admin/api/presence?room=blue&token=s3cret", "").await;
    assert_eq!(status, 200);
    let presence: serde_json::Value = serde_json::from_str(&presence).unwrap();
    assert_eq!(presence["members"][0]["label"], "Alice");
    assert_eq!(presence["members"][0]["id"], id.to_string());
}

/// With `admin_addr`, `/metrics` and `/admin` move to a listener of their own: the main one
/// answers them like any unknown page, the admin one serves them (and 404s anything else,
/// and no WebSocket upgrade), and counts what the main one serves.
#[tokio::test]
async fn metrics_and_admin_move_to_their_own_address() {
    let server = builder()
        .metrics(true)
        .admin_token("s3cret")
        .admin_addr("127.0.0.1:0".parse().unwrap())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (addr, admin) = (server.local_addr(), server.admin_addr().expect("an admin listener"));
    assert_ne!(addr, admin);
    let stop = server.shutdown_handle();
    tokio::spawn(server.run());

    assert_eq!(get(addr, "/metrics", "").await.0, 404);
    assert_eq!(get(addr, "/admin?token=s3cret", "").await.0, 404);
    assert_eq!(get(admin, "/admin", "").await.0, 401);
    assert_eq!(get(admin, "/admin?token=s3cret", "").await.0, 200);
    assert_eq!(get(admin, "/", "").await.0, 404);
    assert!(connect(&format!("ws://{admin}/echo"), &ConnectOptions::default()).await.is_err());

    let before = scrape(admin).await;
    let (mut c, _) = connect(&format!("ws://{addr}/echo"), &ConnectOptions::default()).await.unwrap();
    c.write("hello").await.unwrap();
    c.read(0, T).await.unwrap();
    let after = until(admin, r#"ws_messages_sent_total{class="/echo"}"#, 1.0).await;
    assert_eq!(deltas(&before, &after, &[r#"ws_messages_received_total{class="/echo"}"#]), [1.0]);

    // The server's request head limit holds there too.
    let big = format!("X-Big: {}\r\n", "a".repeat(64 << 10));
    assert_eq!(get(admin, "/metrics", &big).await.0, 431);
    drop(c);
    stop.shutdown().await;
    // Shutdown closes the admin listener too.
    let refused = tokio::time::timeout(T, async {
        loop {
            if TcpStream::connect(admin).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    refused.await.expect("the admin listener closes on shutdown");
}
