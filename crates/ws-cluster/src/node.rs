//! One server node in the cluster: joining and leaving, the state its tasks share, and the
//! `Cluster` hooks ws-server's registry calls (each handled by its concern's module).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use ws_server::{Cluster, Member, OpenError, Registry, SharedHandle, SocketInfo, WebSocketId};

use crate::config::ClusterConfig;
use crate::outbox::Publication;
use crate::pubsub::SubscriptionChange;
use crate::rpc::Pending;

/// What a node's tasks and hooks share.
pub(crate) struct Node {
    /// For handles that outlive a hook's `&self` (remote sockets).
    pub(crate) me: Weak<Node>,
    pub(crate) id: String,
    pub(crate) config: ClusterConfig,
    pub(crate) redis: ConnectionManager,
    pub(crate) registry: Registry,
    pub(crate) outbox: mpsc::Sender<Publication>,
    /// Publications queued in the outbox or being sent.
    pub(crate) publishing: AtomicU64,
    pub(crate) subscriptions: mpsc::UnboundedSender<SubscriptionChange>,
    /// Local member count per room: the room's channel is subscribed while it is non-zero.
    pub(crate) local_rooms: Mutex<HashMap<String, usize>>,
    pub(crate) pending: Pending,
    pub(crate) pubsub_up: AtomicBool,
    pub(crate) redis_up: AtomicBool,
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
            pending: Pending::new(),
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
        // What the last sockets published (their on_post_server, say) goes out first; a
        // bounded wait, as Redis may be down.
        self.node.drain_outbox(Duration::from_secs(2)).await;
        self.node.forget_node().await;
        for task in &self.tasks {
            task.abort();
        }
        tracing::info!(node = %self.node.id, "left the cluster");
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl Cluster for Node {
    async fn socket_added(&self, info: &SocketInfo) {
        self.store_socket(info).await;
    }

    async fn socket_removed(&self, id: &WebSocketId, rooms: &[Arc<str>]) {
        self.forget_socket(id).await;
        for room in rooms {
            self.member_left(room, id).await;
        }
    }

    async fn joined(&self, room: &str, member: &Member, label_change: bool) {
        self.member_joined(room, member, label_change).await;
    }

    async fn left(&self, room: &str, id: &WebSocketId) {
        self.member_left(room, id).await;
    }

    fn publish(&self, room: &str, frame: Bytes) {
        self.publish_frame(room, &frame);
    }

    async fn open_remote(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        self.open_remote_socket(id).await
    }

    async fn room_members(&self, room: &str) -> Option<Vec<Member>> {
        self.live_members(room).await
    }
}
