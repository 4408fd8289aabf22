//! What a node keeps in Redis, and in what format: its liveness key, where each of its
//! sockets lives, and its sockets' room memberships. Values are short space-separated
//! strings, as `redis-cli` shows them.
//!
//! - `<prefix>:node:<node>`: `1`, expiring after `node_ttl` unless heartbeated.
//! - `<prefix>:nodes`: a sorted set of the nodes by the time their heartbeat expires (ms since
//!   the epoch), and `<prefix>:node-sockets`: a hash from each node to its number of sockets;
//!   for the metrics and the admin page (`ws_cluster_nodes`, sockets per node).
//! - `<prefix>:sock:<id>`: `<node> <1|0>`, the node holding the socket and whether it is shared.
//! - `<prefix>:room:<room>`: a hash from each member's id to `<node> <since_ms> <label>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::AsyncCommands;
use ws_server::{Member, SocketInfo, WebSocketId};

use crate::node::Node;

/// Where a socket lives, from its `sock:` key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) node: String,
    pub(crate) shared: bool,
}

impl Location {
    fn value(&self) -> String {
        format!("{} {}", self.node, if self.shared { 1 } else { 0 })
    }

    fn parse(value: &str) -> Option<Location> {
        let (node, shared) = value.split_once(' ')?;
        let shared = match shared {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        Some(Location { node: node.to_string(), shared })
    }
}

fn member_value(node: &str, member: &Member) -> String {
    format!("{} {} {}", node, member.since_ms, member.label)
}

/// A `room:` hash entry: the member's node and the member.
fn parse_member(id: &str, value: &str) -> Option<(String, Member)> {
    let mut parts = value.splitn(3, ' ');
    let (node, since, label) = (parts.next()?, parts.next()?, parts.next()?);
    let member = Member { id: id.parse().ok()?, label: label.to_string(), since_ms: since.parse().ok()? };
    Some((node.to_string(), member))
}

impl Node {
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{}", self.config.prefix, rest)
    }

    fn node_key(&self, node: &str) -> String {
        self.key(&format!("node:{node}"))
    }

    fn socket_key(&self, id: &WebSocketId) -> String {
        self.key(&format!("sock:{id}"))
    }

    fn room_key(&self, room: &str) -> String {
        self.key(&format!("room:{room}"))
    }

    /// Logs Redis errors once per outage, not once per command.
    pub(crate) fn note<T>(&self, what: &str, result: redis::RedisResult<T>) -> Option<T> {
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

    pub(crate) async fn heartbeat_once(&self) -> bool {
        let mut redis = self.redis.clone();
        let ttl = self.config.node_ttl.as_millis().max(1) as u64;
        let alive = self
            .note("heartbeat", redis.pset_ex::<_, _, ()>(self.node_key(&self.id), "1", ttl).await)
            .is_some();
        if alive {
            self.count_nodes(ttl).await;
        }
        alive
    }

    /// Announces this node's socket count and reads every live node's, for the metrics.
    async fn count_nodes(&self, ttl_ms: u64) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = now.as_millis() as u64;
        let (nodes, counts) = (self.key("nodes"), self.key("node-sockets"));
        let mut pipe = redis::pipe();
        pipe.zadd(&nodes, &self.id, now + ttl_ms).ignore();
        pipe.hset(&counts, &self.id, self.registry.len()).ignore();
        pipe.zrembyscore(&nodes, "-inf", now).ignore();
        pipe.zrange(&nodes, 0, -1).hgetall(&counts);
        let mut redis = self.redis.clone();
        let read = pipe.query_async::<(Vec<String>, HashMap<String, u64>)>(&mut redis).await;
        if let Some((live, counts)) = self.note("node count", read) {
            let nodes = live.into_iter().map(|n| {
                let sockets = counts.get(&n).copied().unwrap_or(0);
                (n, sockets)
            });
            self.registry.cluster_stats().set_nodes(nodes.collect());
        }
    }

    pub(crate) async fn run_heartbeat(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.heartbeat_once().await;
        }
    }

    pub(crate) async fn store_socket(&self, info: &SocketInfo) {
        let mut redis = self.redis.clone();
        let value = Location { node: self.id.clone(), shared: info.shared }.value();
        self.note("register", redis.set::<_, _, ()>(self.socket_key(&info.id), value).await);
    }

    pub(crate) async fn forget_socket(&self, id: &WebSocketId) {
        let mut redis = self.redis.clone();
        self.note("unregister", redis.del::<_, ()>(self.socket_key(id)).await);
    }

    pub(crate) async fn store_member(&self, room: &str, member: &Member) {
        let mut redis = self.redis.clone();
        let value = member_value(&self.id, member);
        self.note(
            "room membership",
            redis.hset::<_, _, _, ()>(self.room_key(room), member.id.to_string(), value).await,
        );
    }

    pub(crate) async fn forget_member(&self, room: &str, id: &WebSocketId) {
        let mut redis = self.redis.clone();
        self.note("leave", redis.hdel::<_, _, ()>(self.room_key(room), id.to_string()).await);
    }

    /// Where the socket `id` lives (`None`: unknown, unreadable, or Redis is down).
    pub(crate) async fn locate(&self, id: &WebSocketId) -> Option<Location> {
        let mut redis = self.redis.clone();
        let value: Option<String> = self.note("lookup", redis.get(self.socket_key(id)).await).flatten();
        Location::parse(&value?)
    }

    /// Every stored member of `room` with its node, live or not (`None`: Redis is down).
    /// Entries that do not parse are skipped.
    pub(crate) async fn stored_members(&self, room: &str) -> Option<Vec<(String, Member)>> {
        let mut redis = self.redis.clone();
        let entries: HashMap<String, String> =
            self.note("members", redis.hgetall(self.room_key(room)).await)?;
        Some(entries.iter().filter_map(|(id, value)| parse_member(id, value)).collect())
    }

    /// Which of `nodes` still heartbeat (`None`: Redis is down).
    pub(crate) async fn alive_nodes(&self, nodes: &[String]) -> Option<Vec<bool>> {
        if nodes.is_empty() {
            return Some(Vec::new());
        }
        let mut redis = self.redis.clone();
        let mut pipe = redis::pipe();
        for n in nodes {
            pipe.exists(self.node_key(n));
        }
        self.note("liveness", pipe.query_async::<Vec<bool>>(&mut redis).await)
    }

    /// The goodbye: removes this node's sockets, memberships and liveness key. Best effort,
    /// unlogged (Redis may be down; the keys then expire or are overwritten).
    pub(crate) async fn forget_node(&self) {
        let mut redis = self.redis.clone();
        for socket in self.registry.snapshot() {
            let _: Result<(), _> = redis.del(self.socket_key(&socket.info.id)).await;
            for (room, _) in socket.rooms {
                let _: Result<(), _> = redis.hdel(self.room_key(&room), socket.info.id.to_string()).await;
            }
        }
        let _: Result<(), _> = redis.del(self.node_key(&self.id)).await;
        let _: Result<(), _> = redis.zrem(self.key("nodes"), &self.id).await;
        let _: Result<(), _> = redis.hdel(self.key("node-sockets"), &self.id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_odd_ones_are_refused() {
        for shared in [true, false] {
            let location = Location { node: "n1".into(), shared };
            assert_eq!(Location::parse(&location.value()), Some(location));
        }
        assert_eq!(Location::parse("n1"), None);
        assert_eq!(Location::parse("n1 yes"), None);

        let id = WebSocketId::new();
        for label in ["", "Alice Smith"] {
            let member = Member { id, label: label.into(), since_ms: 1_700_000_000_000 };
            assert_eq!(
                parse_member(&id.to_string(), &member_value("n1", &member)),
                Some(("n1".into(), member))
            );
        }
        assert_eq!(parse_member(&id.to_string(), "n1 12"), None);
        assert_eq!(parse_member(&id.to_string(), "n1 soon Alice"), None);
        assert_eq!(parse_member("not-an-id", "n1 12 Alice"), None);
    }
}
