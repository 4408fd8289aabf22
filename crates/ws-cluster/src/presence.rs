//! Presence across nodes: this node's joins, relabels and leaves are stored and announced;
//! other nodes' announcements become local presence events; a room's members are listed
//! from Redis, keeping only those on live nodes.

use ws_server::{Member, PresenceEvent, WebSocketId};

use crate::node::Node;
use crate::wire::{self, Change, Header};

impl Node {
    /// `member` (on this node) joined `room`, or changed its label there.
    pub(crate) async fn member_joined(&self, room: &str, member: &Member, label_change: bool) {
        self.store_member(room, member).await;
        let (label, since_ms) = (member.label.clone(), member.since_ms);
        let change = if label_change {
            Change::Label { label, since_ms }
        } else {
            self.count_room(room, 1).await;
            Change::Join { label, since_ms }
        };
        self.announce(room, &member.id, change);
    }

    /// The socket `id` (on this node) left `room`.
    pub(crate) async fn member_left(&self, room: &str, id: &WebSocketId) {
        self.forget_member(room, id).await;
        self.announce(room, id, Change::Leave);
        self.count_room(room, -1).await;
    }

    fn announce(&self, room: &str, id: &WebSocketId, change: Change) {
        let header = Header::Presence { node: self.id.clone(), room: room.to_string(), id: *id, change };
        self.enqueue(self.presence_channel(), wire::encode(&header, &[]));
    }

    /// Another node's announcement, as a local presence event (this node's own were emitted
    /// locally already).
    pub(crate) fn on_presence(&self, node: &str, room: String, id: WebSocketId, change: Change) {
        if node == self.id {
            return;
        }
        self.registry.emit_presence(match change {
            Change::Join { label, since_ms } => {
                PresenceEvent::Join { room, member: Member { id, label, since_ms } }
            }
            Change::Label { label, since_ms } => {
                PresenceEvent::Label { room, member: Member { id, label, since_ms } }
            }
            Change::Leave => PresenceEvent::Leave { room, id },
        });
    }

    /// The members of `room` on live nodes (`None`: Redis cannot be asked).
    pub(crate) async fn live_members(&self, room: &str) -> Option<Vec<Member>> {
        let stored = self.stored_members(room).await?;
        let mut nodes: Vec<String> = stored.iter().map(|(n, _)| n.clone()).collect();
        nodes.sort();
        nodes.dedup();
        let alive = self.alive_nodes(&nodes).await?;
        let live: Vec<&String> = nodes.iter().zip(alive).filter(|(_, a)| *a).map(|(n, _)| n).collect();
        Some(stored.into_iter().filter(|(n, _)| live.contains(&n)).map(|(_, m)| m).collect())
    }
}
