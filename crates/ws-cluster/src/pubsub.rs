//! The pub/sub connection: the channels a node listens to, keeping them subscribed across
//! Redis outages, and handing each arriving message to its concern.
//!
//! - `<prefix>:inbox:<node>`: requests to the node and replies to its requests;
//! - `<prefix>:ch:presence`: every node's presence changes;
//! - `<prefix>:ch:room:<room>`: frames published to the room, subscribed while the node has
//!   members there.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use ws_server::Member;

use crate::node::Node;
use crate::wire::{self, Header};

/// A subscription change for the pub/sub task, acknowledged once Redis confirmed it.
pub(crate) struct SubscriptionChange {
    channel: String,
    subscribe: bool,
    done: Option<oneshot::Sender<()>>,
}

/// A channel this node listens to.
enum Channel<'a> {
    Inbox,
    Presence,
    Room(&'a str),
}

impl Node {
    pub(crate) fn inbox_channel(&self, node: &str) -> String {
        self.key(&format!("inbox:{node}"))
    }

    pub(crate) fn room_channel(&self, room: &str) -> String {
        self.key(&format!("ch:room:{room}"))
    }

    pub(crate) fn presence_channel(&self) -> String {
        self.key("ch:presence")
    }

    fn channel<'a>(&self, name: &'a str) -> Option<Channel<'a>> {
        let rest = name.strip_prefix(&self.config.prefix)?.strip_prefix(':')?;
        if let Some(room) = rest.strip_prefix("ch:room:") {
            Some(Channel::Room(room))
        } else if rest == "ch:presence" {
            Some(Channel::Presence)
        } else {
            rest.starts_with("inbox:").then_some(Channel::Inbox)
        }
    }

    /// The pub/sub connection: this node's inbox, the presence channel, and the channel of
    /// every room with local members. Reconnects with backoff, resubscribes, and announces
    /// this node's sockets again (Redis may have lost them).
    pub(crate) async fn run_pubsub(
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
                        self.registry.cluster_stats().set_bus_up(true);
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
                        self.registry.cluster_stats().set_bus_up(false);
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
            self.store_socket(&socket.info).await;
            for (room, since) in socket.rooms {
                let member = Member { id: socket.info.id, label: socket.label.clone(), since_ms: since };
                self.store_member(&room, &member).await;
            }
        }
    }

    fn on_message(self: Arc<Self>, channel: &str, payload: &[u8]) {
        let Some(kind) = self.channel(channel) else { return };
        match (kind, wire::decode(payload)) {
            (Channel::Inbox, decoded) => self.on_inbox(channel, payload, decoded),
            (Channel::Room(room), Ok((Header::Room { from }, frame))) => {
                // Our own publications were delivered locally already.
                if from != self.id {
                    self.registry.deliver_to_room(room, Bytes::copy_from_slice(frame));
                }
            }
            (Channel::Presence, Ok((Header::Presence { node, room, id, change }, _))) => {
                self.on_presence(&node, room, id, change)
            }
            (_, Ok((header, _))) => self.drop_message(channel, format_args!("a {} message", header.kind())),
            (_, Err(e)) => self.drop_message(channel, e),
        }
    }

    /// Logs a message this node cannot use (another version's, say) and forgets it.
    pub(crate) fn drop_message(&self, channel: &str, why: impl Display) {
        tracing::warn!(node = %self.id, channel, %why, "dropped a malformed cluster message");
    }

    /// Carries a frame, already delivered to this node's members of `room`, to the others.
    pub(crate) fn publish_frame(&self, room: &str, frame: &[u8]) {
        let header = Header::Room { from: self.id.clone() };
        self.enqueue(self.room_channel(room), wire::encode(&header, frame));
        self.registry.cluster_stats().published();
    }

    /// Adjusts the local member count of `room`, (un)subscribing its channel at the edges.
    pub(crate) async fn count_room(&self, room: &str, delta: isize) {
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
}
