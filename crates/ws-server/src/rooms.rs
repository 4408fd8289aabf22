//! Rooms with presence: membership, labels, `publish` to a room (on every node with a
//! cluster), and the presence events.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;
use ws_proto::{MessageKind, encode_server_frame};

use crate::registry::now_ms;
use crate::{Registry, WebSocketId};

/// A socket in a room, as presence reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The socket.
    pub id: WebSocketId,
    /// Its label (application data such as a user name; see [`Registry::set_label`]).
    pub label: String,
    /// When it joined the room (milliseconds since the Unix epoch), for ordering.
    pub since_ms: u64,
}

/// A change in a room's membership, on this node or (with a cluster) any node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// `member` joined `room`.
    Join {
        /// The room.
        room: String,
        /// Who joined.
        member: Member,
    },
    /// The socket `id` left `room` (or closed).
    Leave {
        /// The room.
        room: String,
        /// Who left.
        id: WebSocketId,
    },
    /// `member` of `room` changed its label.
    Label {
        /// The room.
        room: String,
        /// The member with its new label.
        member: Member,
    },
}

impl Registry {
    /// Adds socket `id` to `room` (announced as a presence `Join`). Returns false if there
    /// is no such socket here.
    pub async fn subscribe(&self, id: &WebSocketId, room: &str) -> bool {
        let since = now_ms();
        let member = {
            let mut sockets = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = sockets.get_mut(id) else { return false };
            let room: Arc<str> = room.into();
            let since = match entry.joined(&room) {
                Some(joined) => joined,
                None => {
                    entry.extra_mut().rooms.push((room.clone(), since));
                    since
                }
            };
            let mailbox = entry.mailbox.clone();
            self.inner
                .rooms
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(room)
                .or_default()
                .insert(*id, mailbox);
            Member { id: *id, label: entry.label().to_string(), since_ms: since }
        };
        let _ = self.inner.presence.send(PresenceEvent::Join { room: room.into(), member: member.clone() });
        if let Some(cluster) = self.cluster() {
            cluster.joined(room, &member, false).await;
        }
        true
    }

    /// Removes socket `id` from `room`.
    pub async fn unsubscribe(&self, id: &WebSocketId, room: &str) {
        let was_member = match self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            Some(entry) => entry
                .extra
                .as_mut()
                .and_then(|x| x.rooms.iter().position(|(r, _)| &**r == room).map(|i| x.rooms.swap_remove(i)))
                .is_some(),
            None => false,
        };
        {
            let mut rooms = self.inner.rooms.write().unwrap_or_else(|e| e.into_inner());
            if let Some(members) = rooms.get_mut(room) {
                members.remove(id);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
        if was_member {
            let _ = self.inner.presence.send(PresenceEvent::Leave { room: room.into(), id: *id });
            if let Some(cluster) = self.cluster() {
                cluster.left(room, id).await;
            }
        }
    }

    /// Sets socket `id`'s label (a user name, say), reported by presence in every room it is
    /// in. Returns false if there is no such socket here.
    pub async fn set_label(&self, id: &WebSocketId, label: &str) -> bool {
        let changed: Vec<(String, Member)> = {
            let mut sockets = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = sockets.get_mut(id) else { return false };
            entry.extra_mut().label = label.to_string();
            entry
                .rooms()
                .iter()
                .map(|(room, since)| {
                    (room.to_string(), Member { id: *id, label: label.into(), since_ms: *since })
                })
                .collect()
        };
        for (room, member) in changed {
            let _ =
                self.inner.presence.send(PresenceEvent::Label { room: room.clone(), member: member.clone() });
            if let Some(cluster) = self.cluster() {
                cluster.joined(&room, &member, true).await;
            }
        }
        true
    }

    /// Socket `id`'s label (local sockets).
    pub fn label(&self, id: &WebSocketId) -> Option<String> {
        self.inner.sockets.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.label().to_string())
    }

    /// The members of `room` on this node, in order of joining.
    pub fn local_members(&self, room: &str) -> Vec<Member> {
        let ids: Vec<WebSocketId> = {
            let rooms = self.inner.rooms.read().unwrap_or_else(|e| e.into_inner());
            rooms.get(room).map(|m| m.keys().copied().collect()).unwrap_or_default()
        };
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        let mut members: Vec<Member> = ids
            .into_iter()
            .filter_map(|id| {
                let e = sockets.get(&id)?;
                Some(Member { id, label: e.label().to_string(), since_ms: e.joined(room)? })
            })
            .collect();
        members.sort_by_key(|m| (m.since_ms, m.id));
        members
    }

    /// The members of `room` on every node (this node's alone without a cluster, or while the
    /// cluster cannot be reached), in order of joining.
    pub async fn room_members(&self, room: &str) -> Vec<Member> {
        if let Some(cluster) = self.cluster()
            && let Some(mut members) = cluster.room_members(room).await
        {
            members.sort_by_key(|m| (m.since_ms, m.id));
            return members;
        }
        self.local_members(room)
    }

    /// The socket ids in `room` on this node.
    pub fn members(&self, room: &str) -> Vec<WebSocketId> {
        let rooms = self.inner.rooms.read().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }

    /// The rooms that have members on this node.
    pub fn rooms(&self) -> Vec<String> {
        self.inner.rooms.read().unwrap_or_else(|e| e.into_inner()).keys().map(|r| r.to_string()).collect()
    }

    /// Sends `text` to every socket in `room` (on every node, with a cluster), encoded once
    /// per node. Returns how many sockets on this node took it.
    pub fn publish(&self, room: &str, text: &str) -> usize {
        self.publish_frame(room, encode_server_frame(MessageKind::Text, text.as_bytes()))
    }

    /// Sends binary `data` to every socket in `room`, encoded once per node.
    pub fn publish_binary(&self, room: &str, data: &[u8]) -> usize {
        self.publish_frame(room, encode_server_frame(MessageKind::Binary, data))
    }

    fn publish_frame(&self, room: &str, frame: Bytes) -> usize {
        // Encoded once here; compressed once here for this node's recipients; the plain frame
        // goes to the other nodes, each of which compresses it once for its own.
        let delivered = self.deliver_to_room(room, frame.clone());
        if let Some(cluster) = self.cluster() {
            cluster.publish(room, frame);
        }
        delivered
    }

    /// Sends an encoded frame to this node's members of `room` only: how a cluster backend
    /// delivers what another node published.
    pub fn deliver_to_room(&self, room: &str, frame: Bytes) -> usize {
        let frame = crate::frame::PushedFrame::new(frame);
        let rooms = self.inner.rooms.read().unwrap_or_else(|e| e.into_inner());
        match rooms.get(room) {
            Some(members) => self.deliver(members.iter().map(|(id, m)| (id, &**m)), &frame),
            None => 0,
        }
    }

    /// Presence changes (joins, leaves, label changes) in every room, as they happen.
    pub fn presence_events(&self) -> broadcast::Receiver<PresenceEvent> {
        self.inner.presence.subscribe()
    }

    /// Reports a presence change that happened on another node (for cluster backends).
    pub fn emit_presence(&self, event: PresenceEvent) {
        let _ = self.inner.presence.send(event);
    }
}
