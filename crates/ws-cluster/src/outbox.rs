//! Everything a node publishes (room frames, presence, requests, replies) goes through one
//! bounded queue and one task, so it leaves in order and a slow or absent Redis never holds
//! up a socket.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;

use crate::node::Node;

/// A publication: its channel and bytes.
pub(crate) type Publication = (String, Vec<u8>);

impl Node {
    /// Publishes in order, one at a time: publications from this node arrive in the order
    /// they were made. During an outage they fail and are dropped (pub/sub is at-most-once).
    pub(crate) async fn run_outbox(self: Arc<Self>, mut queue: mpsc::Receiver<Publication>) {
        while let Some((channel, payload)) = queue.recv().await {
            let mut redis = self.redis.clone();
            self.note("publish", redis.publish::<_, _, ()>(channel, payload).await);
            self.publishing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn enqueue(&self, channel: String, payload: Vec<u8>) {
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

    /// Waits, at most `limit`, until every queued publication has gone out (or failed).
    pub(crate) async fn drain_outbox(&self, limit: Duration) {
        let drained = async {
            while self.publishing.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(limit, drained).await;
    }
}
