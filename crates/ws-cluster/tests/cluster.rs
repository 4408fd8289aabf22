//! Three nodes sharing one real Redis (started by the test on a free loopback port):
//! cross-node `open_server`, rooms and presence, a node dying without goodbye, and a Redis
//! restart in the middle.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use ws_cluster::testing::RedisServer;
use ws_cluster::{ClusterConfig, ClusterNode};
use ws_server::{
    CloseCode, Connection, Error, OpenError, PreServer, PresenceEvent, Registry, Reject, Server, WebSocketId,
    WebSocketServer, async_trait,
};
use ws_session::{ConnectOptions, WebSocket, connect};

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
    ClusterConfig {
        prefix: prefix.into(),
        node_ttl: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(300),
        reply_grace: Duration::from_secs(1),
        ..ClusterConfig::new(&redis.url())
    }
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

async fn client(node: &Node, path: &str) -> WebSocket<TcpStream> {
    connect(&format!("ws://{}{}", node.addr, path), &ConnectOptions::default()).await.unwrap().0
}

async fn member(node: &Node, room: &str, name: &str) -> WebSocket<TcpStream> {
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
