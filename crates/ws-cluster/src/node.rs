//! One server node in the cluster: its Redis connections, background tasks, and the
//! `Cluster` hooks ws-server's registry calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use ws_server::{
    CloseCode, Cluster, Error, Member, Message, OpenError, PresenceEvent, Registry, RemoteSocket,
    SharedHandle, SocketInfo, WebSocketId,
};

use crate::wire;

/// Settings of a cluster node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis server, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Prefix of every key and channel (several clusters can share one Redis).
    pub prefix: String,
    /// A node that stops heartbeating is considered dead after this long; its sockets
    /// disappear from `open_server` and presence.
    pub node_ttl: Duration,
    /// How often a node refreshes its liveness key (well under `node_ttl`).
    pub heartbeat: Duration,
    /// Extra time a cross-node call waits for the other node's answer beyond its own timeout;
    /// past it the call fails with `Closed` (1006, "node unreachable").
    pub reply_grace: Duration,
    /// Most publications waiting to go out to Redis; beyond it (Redis slow or down) new ones
    /// are dropped for other nodes (local delivery is unaffected).
    pub outbox_capacity: usize,
    /// Timeout of each Redis command.
    pub command_timeout: Duration,
}

impl ClusterConfig {
    /// Defaults for `redis_url`: prefix `ws`, 3 s node TTL, 1 s heartbeat.
    pub fn new(redis_url: &str) -> Self {
        ClusterConfig {
            redis_url: redis_url.to_string(),
            prefix: "ws".into(),
            node_ttl: Duration::from_secs(3),
            heartbeat: Duration::from_millis(1000),
            reply_grace: Duration::from_secs(2),
            outbox_capacity: 10_000,
            command_timeout: Duration::from_secs(1),
        }
    }
}

/// A subscription change for the pub/sub task, acknowledged once Redis confirmed it.
struct SubscriptionChange {
    channel: String,
    subscribe: bool,
    done: Option<oneshot::Sender<()>>,
}

struct Node {
    me: std::sync::Weak<Node>,
    id: String,
    config: ClusterConfig,
    redis: ConnectionManager,
    registry: Registry,
    outbox: mpsc::Sender<(String, Vec<u8>)>,
    /// Publications queued in the outbox or being sent.
    publishing: AtomicU64,
    subscriptions: mpsc::UnboundedSender<SubscriptionChange>,
    /// Local member count per room: the room's channel is subscribed while it is non-zero.
    local_rooms: Mutex<HashMap<String, usize>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<(Value, Bytes)>>>,
    next_request: AtomicU64,
    pubsub_up: AtomicBool,
    redis_up: AtomicBool,
}

/// This process's membership in a cluster of server nodes sharing one Redis. Create it with
/// [`ClusterNode::join`]; it attaches itself to the registry, and from then on
/// `open_server`, rooms, `publish` and presence span every node.
pub struct ClusterNode {
    node: Arc<Node>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode").field("id", &self.node.id).finish()
    }
}

fn random_node_id() -> String {
    let id = WebSocketId::new().to_string();
    id[..16].to_string()
}

impl ClusterNode {
    /// Connects to Redis and attaches to `registry` (which must not have a cluster yet).
    /// Fails if Redis cannot be reached now; later outages are survived (see the crate docs).
    pub async fn join(registry: &Registry, config: ClusterConfig) -> Result<ClusterNode, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let redis = client.get_connection_manager_with_config(manager_config).await?;
        let (outbox, outbox_rx) = mpsc::channel(config.outbox_capacity.max(1));
        let (subscriptions, subscriptions_rx) = mpsc::unbounded_channel();
        let node = Arc::new_cyclic(|me| Node {
            me: me.clone(),
            id: random_node_id(),
            config,
            redis,
            registry: registry.clone(),
            outbox,
            publishing: AtomicU64::new(0),
            subscriptions,
            local_rooms: Mutex::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            pubsub_up: AtomicBool::new(false),
            redis_up: AtomicBool::new(true),
        });
        node.heartbeat_once().await;
        if !registry.set_cluster(node.clone()) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "registry already has a cluster",
            )));
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let tasks = vec![
            tokio::spawn(node.clone().run_heartbeat()),
            tokio::spawn(node.clone().run_outbox(outbox_rx)),
            tokio::spawn(node.clone().run_pubsub(client, subscriptions_rx, ready_tx)),
        ];
        // Wait (bounded) until this node hears its inbox, so calls to it work at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        tracing::info!(node = %node.id, "joined the cluster");
        Ok(ClusterNode { node, tasks })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    /// Leaves the cluster with a goodbye: removes this node's keys and its sockets' entries,
    /// then stops the background tasks. (A node that dies without this disappears when its
    /// liveness key expires.)
    pub async fn leave(self) {
        let node = &self.node;
        // What the last sockets published (their on_post_server, say) goes out first; a
        // bounded wait, as Redis may be down.
        let drained = async {
            while node.publishing.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
        let mut redis = node.redis.clone();
        for socket in node.registry.snapshot() {
            let _: Result<(), _> = redis.del(node.key(&format!("sock:{}", socket.info.id))).await;
            for (room, _) in socket.rooms {
                let _: Result<(), _> =
                    redis.hdel(node.key(&format!("room:{room}")), socket.info.id.to_string()).await;
            }
        }
        let _: Result<(), _> = redis.del(node.key(&format!("node:{}", node.id))).await;
        for task in &self.tasks {
            task.abort();
        }
        tracing::info!(node = %node.id, "left the cluster");
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Node {
    fn key(&self, rest: &str) -> String {
        format!("{}:{}", self.config.prefix, rest)
    }

    fn inbox_channel(&self, node: &str) -> String {
        self.key(&format!("inbox:{node}"))
    }

    fn room_channel(&self, room: &str) -> String {
        self.key(&format!("ch:room:{room}"))
    }

    fn presence_channel(&self) -> String {
        self.key("ch:presence")
    }

    /// Logs Redis errors once per outage, not once per command.
    fn note<T>(&self, what: &str, result: redis::RedisResult<T>) -> Option<T> {
        match result {
            Ok(v) => {
                if !self.redis_up.swap(true, Ordering::Relaxed) {
                    tracing::info!(node = %self.id, "Redis reachable again");
                }
                Some(v)
            }
            Err(e) => {
                if self.redis_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(node = %self.id, error = %e, what, "Redis unreachable: serving local sockets only");
                }
                None
            }
        }
    }

    async fn heartbeat_once(&self) -> bool {
        let mut redis = self.redis.clone();
        let ttl = self.config.node_ttl.as_millis().max(1) as u64;
        let key = self.key(&format!("node:{}", self.id));
        self.note("heartbeat", redis.pset_ex::<_, _, ()>(key, "1", ttl).await).is_some()
    }

    async fn run_heartbeat(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.heartbeat_once().await;
        }
    }

    /// Publishes in order, one at a time: publications from this node arrive in the order
    /// they were made. During an outage they fail and are dropped (pub/sub is at-most-once).
    async fn run_outbox(self: Arc<Self>, mut queue: mpsc::Receiver<(String, Vec<u8>)>) {
        while let Some((channel, payload)) = queue.recv().await {
            let mut redis = self.redis.clone();
            self.note("publish", redis.publish::<_, _, ()>(channel, payload).await);
            self.publishing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn enqueue(&self, channel: String, payload: Vec<u8>) {
        self.publishing.fetch_add(1, Ordering::AcqRel);
        let sent = self.outbox.try_send((channel, payload));
        if sent.is_err() {
            self.publishing.fetch_sub(1, Ordering::AcqRel);
        }
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(node = %self.id, "cluster outbox full: a publication is dropped for other nodes");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(node = %self.id, "left the cluster: a publication is not sent");
            }
        }
    }

    /// The pub/sub connection: this node's inbox, the presence channel, and the channel of
    /// every room with local members. Reconnects with backoff, resubscribes, and announces
    /// this node's sockets again (Redis may have lost them).
    async fn run_pubsub(
        self: Arc<Self>,
        client: redis::Client,
        mut changes: mpsc::UnboundedReceiver<SubscriptionChange>,
        ready: oneshot::Sender<()>,
    ) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            match client.get_async_pubsub().await {
                Ok(pubsub) => {
                    let (mut sink, mut stream) = pubsub.split();
                    let mut channels = vec![self.inbox_channel(&self.id), self.presence_channel()];
                    let rooms: Vec<String> =
                        self.local_rooms.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
                    channels.extend(rooms.iter().map(|r| self.room_channel(r)));
                    if let Err(e) = sink.subscribe(&channels).await {
                        tracing::warn!(node = %self.id, error = %e, "subscribing failed");
                    } else {
                        self.pubsub_up.store(true, Ordering::Release);
                        backoff = Duration::from_millis(100);
                        if !first {
                            tracing::info!(node = %self.id, rooms = rooms.len(), "pub/sub reconnected and resubscribed");
                            self.announce_all().await;
                        }
                        first = false;
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                        loop {
                            tokio::select! {
                                msg = stream.next() => match msg {
                                    Some(msg) => self.clone().on_message(msg.get_channel_name(), msg.get_payload_bytes()),
                                    None => break,
                                },
                                change = changes.recv() => {
                                    let Some(change) = change else { return };
                                    let result = if change.subscribe {
                                        sink.subscribe(&change.channel).await
                                    } else {
                                        sink.unsubscribe(&change.channel).await
                                    };
                                    if let Some(done) = change.done {
                                        let _ = done.send(());
                                    }
                                    if result.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        self.pubsub_up.store(false, Ordering::Release);
                        tracing::warn!(node = %self.id, "pub/sub connection lost: reconnecting");
                    }
                }
                Err(e) => tracing::debug!(node = %self.id, error = %e, "pub/sub connect failed"),
            }
            // Changes made while disconnected are covered by the resubscription.
            while let Ok(change) = changes.try_recv() {
                if let Some(done) = change.done {
                    let _ = done.send(());
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Writes every local socket and room membership to Redis again.
    async fn announce_all(&self) {
        self.heartbeat_once().await;
        for socket in self.registry.snapshot() {
            self.socket_added(&socket.info).await;
            for (room, since) in socket.rooms {
                let member = Member { id: socket.info.id, label: socket.label.clone(), since_ms: since };
                self.write_member(&room, &member).await;
            }
        }
    }

    fn on_message(self: Arc<Self>, channel: &str, payload: &[u8]) {
        let Some(rest) = channel.strip_prefix(&self.config.prefix).and_then(|r| r.strip_prefix(':')) else {
            return;
        };
        if let Some(room) = rest.strip_prefix("ch:room:") {
            // `origin\nframe`: skip our own publications, already delivered locally.
            let Some(nl) = payload.iter().position(|&b| b == b'\n') else { return };
            if &payload[..nl] != self.id.as_bytes() {
                self.registry.deliver_to_room(room, Bytes::copy_from_slice(&payload[nl + 1..]));
            }
        } else if rest == "ch:presence" {
            self.on_presence(payload);
        } else if rest.starts_with("inbox:") {
            let Some((header, body)) = wire::split(payload) else { return };
            let body = Bytes::copy_from_slice(body);
            match header["t"].as_str() {
                Some("rep") => {
                    let req = header["req"].as_u64().unwrap_or(0);
                    let waiting = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&req);
                    if let Some(waiting) = waiting {
                        let _ = waiting.send((header, body));
                    }
                }
                Some("req") => {
                    tokio::spawn(async move { self.serve_request(header, body).await });
                }
                _ => {}
            }
        }
    }

    fn on_presence(&self, payload: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(payload) else { return };
        if event["node"].as_str() == Some(self.id.as_str()) {
            return;
        }
        let (Some(room), Some(id)) =
            (event["room"].as_str(), event["id"].as_str().and_then(|i| i.parse().ok()))
        else {
            return;
        };
        let member = || Member {
            id,
            label: event["label"].as_str().unwrap_or("").to_string(),
            since_ms: event["since"].as_u64().unwrap_or(0),
        };
        let room = room.to_string();
        self.registry.emit_presence(match event["ev"].as_str() {
            Some("join") => PresenceEvent::Join { room, member: member() },
            Some("label") => PresenceEvent::Label { room, member: member() },
            _ => PresenceEvent::Leave { room, id },
        });
    }

    fn announce_presence(&self, ev: &str, room: &str, id: &WebSocketId, member: Option<&Member>) {
        let event = json!({
            "node": self.id, "ev": ev, "room": room, "id": id.to_string(),
            "label": member.map(|m| m.label.as_str()), "since": member.map(|m| m.since_ms),
        });
        self.enqueue(self.presence_channel(), event.to_string().into_bytes());
    }

    /// Runs a request from another node on a local shared socket and answers it.
    async fn serve_request(self: Arc<Self>, header: Value, body: Bytes) {
        let req = header["req"].as_u64().unwrap_or(0);
        let Some(from) = header["from"].as_str() else { return };
        let id: Option<WebSocketId> = header["id"].as_str().and_then(|i| i.parse().ok());
        let handle = match id.map(|id| self.registry.open_local(&id)) {
            Some(Ok(h)) => h,
            Some(Err(OpenError::NotShared)) => {
                return self.reply(
                    from,
                    json!({ "t": "rep", "req": req, "ok": false, "err": "notshared" }),
                    &[],
                );
            }
            _ => {
                return self.reply(
                    from,
                    json!({ "t": "rep", "req": req, "ok": false, "err": "notfound" }),
                    &[],
                );
            }
        };
        let ok = json!({ "t": "rep", "req": req, "ok": true });
        match header["op"].as_str() {
            Some("write") => match wire::message_from(header["kind"].as_str(), &body) {
                Some(msg) => match handle.write_message(msg).await {
                    Ok(()) => self.reply(from, ok, &[]),
                    Err(e) => self.reply(from, wire::error_header(req, &e), &[]),
                },
                None => self.reply(
                    from,
                    json!({ "t": "rep", "req": req, "ok": false, "err": "closed", "code": 1007 }),
                    &[],
                ),
            },
            Some("read") => {
                let len = header["len"].as_u64().unwrap_or(0) as usize;
                let timeout = Duration::from_millis(header["timeout_ms"].as_u64().unwrap_or(0));
                match handle.read(len, timeout).await {
                    Ok(msg) => {
                        let (kind, bytes) = wire::message_parts(&msg);
                        self.reply(from, json!({ "t": "rep", "req": req, "ok": true, "kind": kind }), bytes)
                    }
                    Err(e) => self.reply(from, wire::error_header(req, &e), &[]),
                }
            }
            Some("close") => {
                let code = CloseCode(header["code"].as_u64().unwrap_or(1000) as u16);
                let reason = header["reason"].as_str().unwrap_or("");
                match handle.close(code, reason).await {
                    Ok(()) => self.reply(from, ok, &[]),
                    Err(e) => self.reply(from, wire::error_header(req, &e), &[]),
                }
            }
            _ => {}
        }
    }

    fn reply(&self, to: &str, header: Value, body: &[u8]) {
        self.enqueue(self.inbox_channel(to), wire::join(&header, body));
    }

    /// Sends a request to `node` and waits for its answer (bounded by `wait`).
    async fn request(
        &self,
        node: &str,
        mut header: Value,
        body: &[u8],
        wait: Duration,
    ) -> Result<(Value, Bytes), Error> {
        let req = self.next_request.fetch_add(1, Ordering::Relaxed);
        header["t"] = json!("req");
        header["req"] = json!(req);
        header["from"] = json!(self.id);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(req, tx);
        self.enqueue(self.inbox_channel(node), wire::join(&header, body));
        let answer = tokio::time::timeout(wait + self.config.reply_grace, rx).await;
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&req);
        match answer {
            Ok(Ok((header, body))) if header["ok"].as_bool() == Some(true) => Ok((header, body)),
            Ok(Ok((header, _))) => Err(wire::error_from(&header)),
            _ => Err(Error::Closed { code: CloseCode::ABNORMAL, reason: "node unreachable".into() }),
        }
    }

    async fn write_member(&self, room: &str, member: &Member) {
        let mut redis = self.redis.clone();
        let value = format!("{} {} {}", self.id, member.since_ms, member.label);
        let key = self.key(&format!("room:{room}"));
        self.note("room membership", redis.hset::<_, _, _, ()>(key, member.id.to_string(), value).await);
    }

    /// Adjusts the local member count of `room`, (un)subscribing its channel at the edges.
    async fn count_room(&self, room: &str, delta: isize) {
        let edge = {
            let mut rooms = self.local_rooms.lock().unwrap_or_else(|e| e.into_inner());
            let count = rooms.entry(room.to_string()).or_insert(0);
            let before = *count;
            *count = (*count as isize + delta).max(0) as usize;
            let after = *count;
            if after == 0 {
                rooms.remove(room);
            }
            match (before, after) {
                (0, n) if n > 0 => Some(true),
                (n, 0) if n > 0 => Some(false),
                _ => None,
            }
        };
        if let Some(subscribe) = edge {
            let (done, confirmed) = oneshot::channel();
            let change = SubscriptionChange { channel: self.room_channel(room), subscribe, done: Some(done) };
            if self.subscriptions.send(change).is_ok() && self.pubsub_up.load(Ordering::Acquire) {
                // Joined means hearing the room: wait (bounded) for Redis to confirm.
                let _ = tokio::time::timeout(self.config.command_timeout * 2, confirmed).await;
            }
        }
    }

    async fn alive_nodes(&self, nodes: &[String]) -> Option<Vec<bool>> {
        if nodes.is_empty() {
            return Some(Vec::new());
        }
        let mut redis = self.redis.clone();
        let mut pipe = redis::pipe();
        for n in nodes {
            pipe.exists(self.key(&format!("node:{n}")));
        }
        self.note("liveness", pipe.query_async::<Vec<bool>>(&mut redis).await)
    }
}

#[async_trait]
impl Cluster for Node {
    async fn socket_added(&self, info: &SocketInfo) {
        let mut redis = self.redis.clone();
        let value = format!("{} {}", self.id, if info.shared { 1 } else { 0 });
        self.note("register", redis.set::<_, _, ()>(self.key(&format!("sock:{}", info.id)), value).await);
    }

    async fn socket_removed(&self, id: &WebSocketId, rooms: &[Arc<str>]) {
        let mut redis = self.redis.clone();
        self.note("unregister", redis.del::<_, ()>(self.key(&format!("sock:{id}"))).await);
        for room in rooms {
            self.note(
                "leave",
                redis.hdel::<_, _, ()>(self.key(&format!("room:{room}")), id.to_string()).await,
            );
            self.announce_presence("leave", room, id, None);
            self.count_room(room, -1).await;
        }
    }

    async fn joined(&self, room: &str, member: &Member, label_change: bool) {
        self.write_member(room, member).await;
        if !label_change {
            self.count_room(room, 1).await;
        }
        self.announce_presence(if label_change { "label" } else { "join" }, room, &member.id, Some(member));
    }

    async fn left(&self, room: &str, id: &WebSocketId) {
        let mut redis = self.redis.clone();
        self.note("leave", redis.hdel::<_, _, ()>(self.key(&format!("room:{room}")), id.to_string()).await);
        self.announce_presence("leave", room, id, None);
        self.count_room(room, -1).await;
    }

    fn publish(&self, room: &str, frame: Bytes) {
        let mut payload = Vec::with_capacity(self.id.len() + 1 + frame.len());
        payload.extend_from_slice(self.id.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(&frame);
        self.enqueue(self.room_channel(room), payload);
    }

    async fn open_remote(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        let mut redis = self.redis.clone();
        let entry: Option<String> =
            self.note("lookup", redis.get(self.key(&format!("sock:{id}"))).await).flatten();
        let entry = entry.ok_or(OpenError::NotFound)?;
        let (node, shared) = entry.split_once(' ').ok_or(OpenError::NotFound)?;
        if node == self.id {
            return Err(OpenError::NotFound); // ours, but no longer in the local registry
        }
        match self.alive_nodes(&[node.to_string()]).await {
            Some(alive) if alive == [true] => {}
            _ => return Err(OpenError::NotFound), // its node is dead (or Redis is down)
        }
        if shared != "1" {
            return Err(OpenError::NotShared);
        }
        let me = self.strong().ok_or(OpenError::NotFound)?;
        Ok(SharedHandle::remote(*id, Arc::new(RemoteShared { node: me, owner: node.to_string(), id: *id })))
    }

    async fn room_members(&self, room: &str) -> Option<Vec<Member>> {
        let mut redis = self.redis.clone();
        let entries: HashMap<String, String> =
            self.note("members", redis.hgetall(self.key(&format!("room:{room}"))).await)?;
        let mut parsed = Vec::new();
        for (id, value) in entries {
            let mut parts = value.splitn(3, ' ');
            let (Some(node), Some(since), label) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(id), Ok(since)) = (id.parse::<WebSocketId>(), since.parse::<u64>()) else { continue };
            parsed.push((
                node.to_string(),
                Member { id, label: label.unwrap_or("").to_string(), since_ms: since },
            ));
        }
        let mut nodes: Vec<String> = parsed.iter().map(|(n, _)| n.clone()).collect();
        nodes.sort();
        nodes.dedup();
        let alive = self.alive_nodes(&nodes).await?;
        let live: Vec<&String> = nodes.iter().zip(alive).filter(|(_, a)| *a).map(|(n, _)| n).collect();
        Some(parsed.into_iter().filter(|(n, _)| live.contains(&n)).map(|(_, m)| m).collect())
    }
}

impl Node {
    /// A strong reference to this node for remote handles (the `Cluster` hooks only get
    /// `&self`).
    fn strong(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }
}

/// A shared socket on another node.
struct RemoteShared {
    node: Arc<Node>,
    owner: String,
    id: WebSocketId,
}

#[async_trait]
impl RemoteSocket for RemoteShared {
    async fn read(&self, len: usize, timeout: Duration) -> Result<Message, Error> {
        let header = json!({ "op": "read", "id": self.id.to_string(), "len": len, "timeout_ms": timeout.as_millis() as u64 });
        let (reply, body) = self.node.request(&self.owner, header, &[], timeout).await?;
        wire::message_from(reply["kind"].as_str(), &body)
            .ok_or_else(|| Error::InvalidInput("malformed reply from another node".into()))
    }

    async fn write_message(&self, msg: Message) -> Result<(), Error> {
        let (kind, bytes) = wire::message_parts(&msg);
        let header = json!({ "op": "write", "id": self.id.to_string(), "kind": kind });
        self.node.request(&self.owner, header, bytes, self.node.config.command_timeout).await.map(|_| ())
    }

    async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let header = json!({ "op": "close", "id": self.id.to_string(), "code": code.0, "reason": reason });
        // Closing waits for the closing handshake on the other side (bounded there).
        let wait = Duration::from_secs(6);
        match self.node.request(&self.owner, header, &[], wait).await {
            Ok(_) | Err(Error::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
