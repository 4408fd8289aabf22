//! `ws-cluster` spreads a `ws-server` registry over many server nodes that share one Redis:
//! `open_server(id)` on any node reaches a shared socket held by any other (`read`, `write`,
//! `end_server`), rooms and `publish` reach every node (one encoding per node), and presence
//! (room members with their labels, join/leave/label events) is cluster-wide.
//!
//! It is not a message queue and not a store: it keeps only what live nodes need (who holds
//! which socket, who is in which room) and carries messages over Redis pub/sub. Start with
//! [`ClusterNode::join`]: attach it to the registry before the server runs, and application
//! code is the same on one node or many.
//!
//! # How it works
//! - Each node heartbeats a key `<prefix>:node:<id>` with a TTL (`node_ttl`, 3 s). A node
//!   that stops (crash, kill, partition) disappears when the key expires: its sockets no
//!   longer resolve (`open_server` answers `NotFound`) and its members drop out of presence.
//! - `<prefix>:sock:<wsid>` names the node holding each socket (and whether it is shared);
//!   `<prefix>:room:<room>` is a hash of the room's members with node, join time and label.
//! - Each node subscribes to its own inbox channel; a cross-node `read`/`write`/`end_server`
//!   is a request there, answered on the caller's inbox. A node subscribes to a room's
//!   channel while it has members in the room; `publish` delivers locally at once and
//!   forwards the encoded frame once to the room channel for the other nodes.
//! - Every message is a typed JSON header line, then raw payload bytes. A message a node cannot
//!   read (one of another version, say) is logged and dropped, never guessed at; a request
//!   that still names its sender is answered with an error, so the caller does not wait out
//!   its timeout.
//!
//! # Redis outages: what is delivered and what is not
//! Redis pub/sub is at-most-once: a publication goes to the nodes subscribed at that instant
//! and is never stored or replayed. While Redis is unreachable:
//! - every node keeps serving its own sockets: reads, writes, local rooms and local
//!   `publish` work as on a single node; `room_members` falls back to the local members;
//! - publications to other nodes, presence events and cross-node calls are lost (calls fail
//!   with `Closed`, code 1006, "node unreachable", after their timeout plus `reply_grace`);
//!   queued publications beyond `outbox_capacity` are dropped;
//! - `open_server` of a remote socket answers `NotFound`.
//!
//! Nodes reconnect with exponential backoff (100 ms to 5 s), resubscribe their inbox and
//! rooms, and write their sockets and memberships to Redis again (a restarted Redis without
//! persistence has lost them); from then on broadcasts flow again. Each step is logged.
//!
//! # Why the `redis` crate
//! `redis` (redis-rs) is the most used and actively maintained Redis client for Rust. Its
//! tokio `ConnectionManager` multiplexes commands over one connection and reconnects by
//! itself, with per-command timeouts so an outage cannot hang a socket's task; its `PubSub`
//! splits into a sink (subscribe/unsubscribe) and a stream, which is what a node needs to
//! change its room subscriptions while it listens. `fred` would also do; `redis` has the
//! smaller dependency tree for these features.

mod config;
mod node;
mod outbox;
mod presence;
mod pubsub;
mod rpc;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod wire;

pub use config::ClusterConfig;
pub use node::ClusterNode;
