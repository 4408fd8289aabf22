//! Three nodes sharing one real Redis (started by the test on a free loopback port):
//! cross-node `open_server`, rooms and presence, a node dying without goodbye, a Redis
//! restart in the middle, and messages a node cannot read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ws_cluster::testing::RedisServer;
use ws_cluster::{ClusterConfig, ClusterNode};
use ws_server::{
    CloseCode, Connection, Error, OpenError, PreServer, PresenceEvent, Registry, Reject, Server, WebSocketId,
    WebSocketServer, async_trait,
};
use ws_session::{ConnectOptions, Transport, WebSocket, connect};

const T: Duration = Duration::from_secs(10);

/// Shared sockets that record their ids and return at once (the detached pattern).
struct Detached(Arc<Mutex<Vec<WebSocketId>>>);

#[async_trait]
impl WebSocketServer for Detached {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        pre.set_shared_connection(true);
        self.0.lock().unwrap().push(pre.web_socket_id());
        Ok(())
    }
    async fn server(&mut self, _ws: &mut Connection) -> Result<(), Error> {
        Ok(())
    }
}

/// Reads; on `join ROOM NAME` takes NAME as its label and joins ROOM (pushes arrive while it
/// reads).
struct Member;

#[async_trait]
impl WebSocketServer for Member {
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        let id = ws.web_socket_id();
        let registry = ws.registry().clone();
        loop {
            match ws.read(0, T).await {
                Ok(msg) => {
                    // "join ROOM NAME" from the client.
                    if let Some(rest) = msg.as_text().and_then(|t| t.strip_prefix("join ")) {
                        let (room, name) = rest.split_once(' ').unwrap();
                        registry.set_label(&id, name).await;
                        registry.subscribe(&id, room).await;
                        ws.write("joined").await?;
                    }
                }
                Err(Error::Timeout) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

struct Node {
    addr: std::net::SocketAddr,
    registry: Registry,
    cluster: Option<ClusterNode>,
    detached: Arc<Mutex<Vec<WebSocketId>>>,
}

fn config(redis: &RedisServer, prefix: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(&redis.url());
    config.prefix = prefix.into();
    config.node_ttl = Duration::from_millis(1500);
    config.heartbeat = Duration::from_millis(300);
    config.reply_grace = Duration::from_secs(1);
    config
}

async fn node(config: ClusterConfig) -> Node {
    let registry = Registry::new();
    let cluster = ClusterNode::join(&registry, config).await.unwrap();
    let detached = Arc::new(Mutex::new(Vec::new()));
    let d = detached.clone();
    let server = Server::builder()
        .registry(registry.clone())
        .route("/detached", move || Detached(d.clone()))
        .route("/member", || Member)
        .route("/dedicated", || Member)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run());
    Node { addr, registry, cluster: Some(cluster), detached }
}

async fn client(node: &Node, path: &str) -> WebSocket<Transport> {
    connect(&format!("ws://{}{}", node.addr, path), &ConnectOptions::default()).await.unwrap().0
}

async fn member(node: &Node, room: &str, name: &str) -> WebSocket<Transport> {
    let mut ws = client(node, "/member").await;
    ws.write(&format!("join {room} {name}")).await.unwrap();
    assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("joined"));
    ws
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_open_server_rooms_and_presence() {
    let redis = RedisServer::start();
    let (a, b, c) = (
        node(config(&redis, "t1")).await,
        node(config(&redis, "t1")).await,
        node(config(&redis, "t1")).await,
    );

    // A shared socket on A, driven from B: write, read (with len), end.
    let mut on_a = client(&a, "/detached").await;
    let id = eventually_id(&a).await;
    let remote = b.registry.open_server(&id).await.expect("B reaches A's socket");
    assert!(remote.is_remote());
    remote.write("from node B").await.unwrap();
    assert_eq!(on_a.read(0, T).await.unwrap().as_text(), Some("from node B"));
    assert!(remote.read(5, Duration::from_millis(200)).await.unwrap_err().is_timeout());
    on_a.write("reply from the client").await.unwrap();
    assert_eq!(remote.read(5, T).await.unwrap().as_text(), Some("reply"));
    assert_eq!(remote.read(100, T).await.unwrap().as_text(), Some(" from the client"));
    on_a.write_binary(&[0, 255, 10]).await.unwrap();
    assert_eq!(c.registry.open_server(&id).await.unwrap().read(0, T).await.unwrap().as_bytes(), [0, 255, 10]);
    remote.end_server().await.unwrap();
    match on_a.read(0, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
    eventually("the closed socket is gone cluster-wide", T, || async {
        matches!(b.registry.open_server(&id).await, Err(OpenError::NotFound))
    })
    .await;

    // A dedicated socket on C: NotShared from A; an unknown id: NotFound.
    let _dedicated = client(&c, "/dedicated").await;
    let dedicated_id = {
        let mut found = None;
        for _ in 0..100 {
            found = c.registry.list().first().map(|i| i.id);
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        found.unwrap()
    };
    assert_eq!(a.registry.open_server(&dedicated_id).await.unwrap_err(), OpenError::NotShared);
    assert_eq!(a.registry.open_server(&WebSocketId::new()).await.unwrap_err(), OpenError::NotFound);

    // A room with members on all three nodes: one publish, received exactly once each.
    let mut events_on_b = b.registry.presence_events();
    // Members are listed by join time in milliseconds (ties by id): joins in one millisecond
    // may list in any order, so these are a few milliseconds apart.
    let mut alice = member(&a, "lobby", "Alice").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let mut bob = member(&b, "lobby", "Bob").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let mut carol = member(&c, "lobby", "Carol").await;
    let names = |members: Vec<ws_server::Member>| members.into_iter().map(|m| m.label).collect::<Vec<_>>();
    assert_eq!(names(c.registry.room_members("lobby").await), ["Alice", "Bob", "Carol"]);
    assert_eq!(names(a.registry.room_members("lobby").await), ["Alice", "Bob", "Carol"]);
    // B heard Alice (on A) join and set her label.
    let mut heard_alice = false;
    while let Ok(ev) = events_on_b.try_recv() {
        if let PresenceEvent::Join { room, member } | PresenceEvent::Label { room, member } = ev {
            heard_alice |= room == "lobby" && member.label == "Alice";
        }
    }
    assert!(heard_alice, "presence events cross nodes");

    assert_eq!(a.registry.publish("lobby", "one for all"), 1); // one local member on A
    // Publications from one node arrive in order (one outbox, one Redis connection); those
    // of different nodes are not ordered, so the marker comes from A too.
    a.registry.publish("lobby", "marker");
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("one for all"));
        // Exactly once: the next message is the marker, not a duplicate.
        assert_eq!(ws.read(0, T).await.unwrap().as_text(), Some("marker"));
    }

    // Leaving is seen everywhere.
    bob.end_server().await.unwrap();
    eventually("Bob left", T, || async {
        names(a.registry.room_members("lobby").await) == ["Alice", "Carol"]
    })
    .await;
}

async fn eventually_id(n: &Node) -> WebSocketId {
    for _ in 0..200 {
        if let Some(id) = n.detached.lock().unwrap().first().copied()
            && n.registry.open_local(&id).is_ok()
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no detached socket registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gone_without_goodbye_disappears_within_the_ttl() {
    let redis = RedisServer::start();
    let mut dying = node(config(&redis, "t2")).await;
    let other = node(config(&redis, "t2")).await;
    let _socket = client(&dying, "/detached").await;
    let id = eventually_id(&dying).await;
    let _member = member(&dying, "room", "Doomed").await;
    assert!(other.registry.open_server(&id).await.is_ok());
    assert_eq!(other.registry.room_members("room").await.len(), 1);

    // Stop the node's cluster tasks with no goodbye (as a crash would): no keys deleted.
    drop(dying.cluster.take());
    let stopped = Instant::now();
    eventually("the dead node's socket is NotFound", Duration::from_secs(5), || async {
        matches!(other.registry.open_server(&id).await, Err(OpenError::NotFound))
    })
    .await;
    assert!(other.registry.room_members("room").await.is_empty());
    // Within the TTL (1.5 s) plus one heartbeat period of slack.
    assert!(stopped.elapsed() <= Duration::from_millis(1500 + 300 + 500), "{:?}", stopped.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_test_then_broadcasts_flow_again() {
    let mut redis = RedisServer::start();
    let a = node(config(&redis, "t3")).await;
    let b = node(config(&redis, "t3")).await;
    let mut on_a = member(&a, "room", "A").await;
    let mut on_b = member(&b, "room", "B").await;
    a.registry.publish("room", "before");
    assert_eq!(on_a.read(0, T).await.unwrap().as_text(), Some("before"));
    assert_eq!(on_b.read(0, T).await.unwrap().as_text(), Some("before"));

    redis.stop();
    // During the outage each node still serves its own sockets.
    a.registry.publish("room", "local only");
    assert_eq!(on_a.read(0, T).await.unwrap().as_text(), Some("local only"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.restart(); // empty: the nodes must re-announce themselves
    let mut n = 0;
    let started = Instant::now();
    let got = loop {
        assert!(started.elapsed() < Duration::from_secs(20), "broadcasts never flowed again");
        n += 1;
        a.registry.publish("room", &format!("after {n}"));
        match on_b.read(0, Duration::from_millis(300)).await {
            Ok(msg) => break msg.as_text().unwrap().to_string(),
            Err(Error::Timeout) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(got.starts_with("after "), "{got}");
    // B's socket is registered again: A can reach presence on B after the restart.
    eventually("presence restored", T, || async { a.registry.room_members("room").await.len() == 2 }).await;
}

/// Log lines, captured from every test in this binary.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_messages_are_refused_logged_and_dropped() {
    use futures_util::StreamExt;
    use redis::AsyncCommands;

    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let redis = RedisServer::start();
    let a = node(config(&redis, "t4")).await;
    let b = node(config(&redis, "t4")).await;
    let mut on_a = client(&a, "/detached").await;
    let id = eventually_id(&a).await;
    let mut member_on_a = member(&a, "lobby", "Alice").await;
    let mut events_on_a = a.registry.presence_events();

    // A prober on Redis, with an inbox of its own.
    let probe = redis::Client::open(redis.url()).unwrap();
    let mut send = probe.get_multiplexed_async_connection().await.unwrap();
    let mut replies = probe.get_async_pubsub().await.unwrap();
    replies.subscribe("t4:inbox:prober").await.unwrap();
    let mut replies = replies.into_on_message();
    let inbox = format!("t4:inbox:{}", a.cluster.as_ref().unwrap().node_id());

    // A read without timeout_ms is answered with an error, not run as a 0 s read.
    let no_timeout =
        format!(r#"{{"t":"request","req":7,"from":"prober","id":"{id}","op":{{"read":{{"len":0}}}}}}"#);
    let _: () = send.publish(&inbox, format!("{no_timeout}\n")).await.unwrap();
    let reply = tokio::time::timeout(T, replies.next()).await.unwrap().unwrap();
    let reply: serde_json::Value =
        serde_json::from_slice(reply.get_payload_bytes().trim_ascii_end()).unwrap();
    assert_eq!((&reply["t"], &reply["req"]), (&"reply".into(), &7.into()), "{reply}");
    let reason = reply["answer"]["malformed"]["reason"].as_str().unwrap();
    assert!(reason.contains("missing field `timeout_ms`"), "{reason}");

    // An unknown kind, bytes that are no message, a room frame and a presence change in the
    // old untyped formats: none names a requester, so each is only logged and dropped.
    for (channel, raw) in [
        (inbox.as_str(), concat!(r#"{"t":"gossip","from":"prober"}"#, "\n").as_bytes().to_vec()),
        (inbox.as_str(), b"\xff\x00 not a message".to_vec()),
        ("t4:ch:room:lobby", b"someone-else\nold-style frame".to_vec()),
        ("t4:ch:presence", br#"{"node":"x","ev":"join","room":"ghost","id":"00"}"#.to_vec()),
    ] {
        let _: () = send.publish(channel, raw).await.unwrap();
    }

    // The node carries on: a cross-node call and a publication from B arrive, and nothing
    // from the probes reached the member or presence.
    let remote = b.registry.open_server(&id).await.unwrap();
    remote.write("still served").await.unwrap();
    assert_eq!(on_a.read(0, T).await.unwrap().as_text(), Some("still served"));
    b.registry.publish("lobby", "legit");
    assert_eq!(member_on_a.read(0, T).await.unwrap().as_text(), Some("legit"));
    while let Ok(ev) = events_on_a.try_recv() {
        assert!(!format!("{ev:?}").contains("ghost"), "{ev:?}");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), replies.next()).await.is_err(),
        "one answer only"
    );

    // A reply B cannot read fails the call waiting for it at once (the write above was B's
    // request 1, this read is its request 2).
    let reading = tokio::spawn(async move { remote.read(0, T).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inbox_b = format!("t4:inbox:{}", b.cluster.as_ref().unwrap().node_id());
    let _: () =
        send.publish(&inbox_b, concat!(r#"{"t":"reply","req":2,"answer":"maybe"}"#, "\n")).await.unwrap();
    let started = Instant::now();
    match tokio::time::timeout(T, reading).await.unwrap().unwrap() {
        Err(Error::InvalidInput(why)) => assert!(why.contains("malformed reply"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let on_a = format!("node={}", a.cluster.as_ref().unwrap().node_id());
    let dropped: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("dropped a malformed cluster message") && l.contains(&on_a))
        .collect();
    assert_eq!(dropped.len(), 5, "{logs}");
    for why in ["missing field `timeout_ms`", "unknown variant `gossip`", "no header line", "bad header"] {
        assert!(dropped.iter().any(|l| l.contains(why)), "{why}: {dropped:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_metrics_bus_nodes_publications_and_call_latency() {
    let redis = RedisServer::start();
    let mut endpoints = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let registry = Registry::new();
        let cluster = ClusterNode::join(&registry, config(&redis, "t-metrics")).await.unwrap();
        let detached = Arc::new(Mutex::new(Vec::new()));
        let d = detached.clone();
        let server = Server::builder()
            .registry(registry.clone())
            .route("/detached", move || Detached(d.clone()))
            .metrics(true)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.local_addr();
        endpoints.push(server.endpoint());
        tokio::spawn(server.run());
        nodes.push(Node { addr, registry, cluster: Some(cluster), detached });
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let _on_a = client(a, "/detached").await;
    let id = eventually_id(a).await;
    // A call from B to A's socket, and a publication from A.
    b.registry.open_server(&id).await.unwrap().write("hi").await.unwrap();
    a.registry.publish("some room", "hello");
    let sample = |text: &str, name: &str| -> f64 {
        let line =
            text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    let node_a = a.cluster.as_ref().unwrap().node_id().to_string();
    eventually("both nodes counted, with A's socket", T, || async {
        let text = endpoints[1].metrics_text().unwrap();
        let seen_by_b = b.registry.cluster_stats().nodes();
        sample(&text, "ws_cluster_nodes") == 2.0 && seen_by_b.contains(&(node_a.clone(), 1))
    })
    .await;
    assert!(a.registry.cluster_stats().bus_up());
    let on_a = endpoints[0].metrics_text().unwrap();
    let on_b = endpoints[1].metrics_text().unwrap();
    assert_eq!(sample(&on_a, "ws_cluster_bus_up"), 1.0);
    assert_eq!(sample(&on_a, "ws_cluster_publish_total"), 1.0);
    assert_eq!(sample(&on_b, "ws_cluster_call_duration_seconds_count"), 1.0, "{on_b}");
    assert_eq!(sample(&on_a, "ws_cluster_call_duration_seconds_count"), 0.0);
}
