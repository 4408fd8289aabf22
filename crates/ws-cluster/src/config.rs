//! A node's settings.

use std::time::Duration;

/// Settings of a cluster node: [`ClusterConfig::new`], then change the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
