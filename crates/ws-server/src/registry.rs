//! The registry of live sockets: `open_server(id)` for shared ones, listing, rooms with
//! presence, and broadcast with one encoded frame for every recipient. A [`Cluster`] backend
//! (ws-cluster) extends it across nodes behind the same API.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, broadcast};
use ws_proto::{CloseCode, MessageKind, encode_server_frame};

use crate::WebSocketId;
use crate::mailbox::{Command, Mailbox, PushError};
use crate::shared::{SharedHandle, SharedState};
use crate::wakes::DeferredWakes;

/// Why `open_server` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// No live socket has this id (on any node).
    NotFound,
    /// The socket exists but is dedicated: only its own `server` task may use it.
    NotShared,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::NotFound => "no such WebSocket",
            OpenError::NotShared => "the WebSocket is not shared",
        })
    }
}

impl std::error::Error for OpenError {}

/// `open_server`'s failure as a socket error (for `?` in a `server` method).
impl From<OpenError> for ws_session::Error {
    fn from(e: OpenError) -> Self {
        ws_session::Error::InvalidInput(e.to_string())
    }
}

/// What the registry knows of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// Its WebSocketID.
    pub id: WebSocketId,
    /// The server class (or route) serving it.
    pub class: Arc<str>,
    /// The hosting session's id.
    pub session_id: Arc<str>,
    /// Is it shared (reachable with `open_server`)?
    pub shared: bool,
}

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

/// A socket held by another node, reached through a cluster backend.
#[async_trait]
pub trait RemoteSocket: Send + Sync + 'static {
    /// `read(len, timeout)` on the remote socket.
    async fn read(
        &self,
        len: usize,
        timeout: std::time::Duration,
    ) -> Result<ws_session::Message, ws_session::Error>;
    /// Sends one message.
    async fn write_message(&self, msg: ws_session::Message) -> Result<(), ws_session::Error>;
    /// Closes it.
    async fn close(&self, code: CloseCode, reason: &str) -> Result<(), ws_session::Error>;
}

/// Extends a [`Registry`] across server nodes (implemented by ws-cluster over Redis). The
/// registry calls these hooks as local state changes; the backend delivers what other nodes
/// publish with [`Registry::deliver_to_room`] and relays their presence with
/// [`Registry::emit_presence`].
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// A socket opened on this node.
    async fn socket_added(&self, info: &SocketInfo);
    /// A socket of this node closed; it was in `rooms`.
    async fn socket_removed(&self, id: &WebSocketId, rooms: &[Arc<str>]);
    /// `member` (on this node) joined `room`, or changed its label there.
    async fn joined(&self, room: &str, member: &Member, label_change: bool);
    /// The socket `id` (on this node) left `room`.
    async fn left(&self, room: &str, id: &WebSocketId);
    /// Carry `frame`, already delivered to this node's members of `room`, to the others.
    fn publish(&self, room: &str, frame: Bytes);
    /// A handle to a socket held by another node.
    async fn open_remote(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError>;
    /// The members of `room` on every node (`None` when the cluster cannot be asked).
    async fn room_members(&self, room: &str) -> Option<Vec<Member>>;
}

/// A room's members on this node, with their mailboxes.
type RoomMembers = HashMap<WebSocketId, Arc<Mailbox>>;

pub(crate) struct Entry {
    pub(crate) info: SocketInfo,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) shared: Option<Arc<SharedState>>,
    /// Rooms and label, allocated on first use: most sockets have neither, and every entry
    /// stays small in the table.
    extra: Option<Box<Extra>>,
}

#[derive(Default)]
struct Extra {
    /// Each room with the time the socket joined it (ms since the epoch).
    rooms: Vec<(Arc<str>, u64)>,
    label: String,
}

impl Entry {
    fn label(&self) -> &str {
        self.extra.as_ref().map_or("", |x| &x.label)
    }

    fn rooms(&self) -> &[(Arc<str>, u64)] {
        self.extra.as_ref().map_or(&[], |x| &x.rooms)
    }

    fn joined(&self, room: &str) -> Option<u64> {
        self.rooms().iter().find(|(r, _)| &**r == room).map(|&(_, since)| since)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }
}

/// A local socket's full state, for a backend that must re-announce it (after its store lost
/// its data, say).
#[derive(Debug, Clone)]
pub struct LocalSocket {
    /// The socket.
    pub info: SocketInfo,
    /// Its label.
    pub label: String,
    /// Its rooms, with the time it joined each (ms since the epoch).
    pub rooms: Vec<(String, u64)>,
}

struct Inner {
    sockets: RwLock<HashMap<WebSocketId, Entry>>,
    /// Each room's members with their mailboxes, so a publish goes straight to them.
    rooms: RwLock<HashMap<Arc<str>, RoomMembers>>,
    emptied: Notify,
    presence: broadcast::Sender<PresenceEvent>,
    cluster: OnceLock<Arc<dyn Cluster>>,
    /// Wakes of sockets sent a frame, held back so each writes what many senders queued.
    wakes: Arc<DeferredWakes>,
    slow_consumer_closes: AtomicU64,
    dropped_frames: AtomicU64,
}

/// Counters of what the registry did to protect the server from slow consumers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryStats {
    /// Sockets closed because pushed frames piled up past `max_queued_bytes`.
    pub slow_consumer_closes: u64,
    /// Pushed frames dropped for a socket that was already closing as a slow consumer.
    pub dropped_frames: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            sockets: RwLock::default(),
            rooms: RwLock::default(),
            emptied: Notify::new(),
            presence: broadcast::channel(1024).0,
            cluster: OnceLock::new(),
            wakes: Arc::default(),
            slow_consumer_closes: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
        }
    }
}

/// The sockets of one server, reachable from any task: clone it freely (it is an `Arc`).
///
/// A message sent to many sockets ([`broadcast`](Registry::broadcast),
/// [`publish`](Registry::publish)) is encoded into one frame once; every recipient gets the
/// same buffer. The recipients are woken together once the runtime has polled its sockets
/// again, so messages that several clients send at the same moment go out to each recipient
/// in one write (no timer is involved: a lone message waits one turn of the scheduler). With
/// a [`Cluster`] attached, `open_server`, rooms, `publish` and presence reach every node, and
/// application code does not change.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sockets", &self.len())
            .field("clustered", &self.cluster().is_some())
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Registry {
    /// An empty registry (one node).
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches a cluster backend. Only the first call takes effect; returns whether it did.
    pub fn set_cluster(&self, cluster: Arc<dyn Cluster>) -> bool {
        self.inner.cluster.set(cluster).is_ok()
    }

    fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
        self.inner.cluster.get()
    }

    pub(crate) async fn insert(
        &self,
        info: SocketInfo,
        mailbox: Arc<Mailbox>,
        shared: Option<Arc<SharedState>>,
    ) {
        let id = info.id;
        let entry = Entry { info: info.clone(), mailbox, shared, extra: None };
        self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).insert(id, entry);
        if let Some(cluster) = self.cluster() {
            cluster.socket_added(&info).await;
        }
    }

    pub(crate) async fn remove(&self, id: &WebSocketId) {
        let entry = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        let Some(entry) = entry else { return };
        let rooms: Vec<Arc<str>> = entry.rooms().iter().map(|(r, _)| r.clone()).collect();
        {
            let mut all = self.inner.rooms.write().unwrap_or_else(|e| e.into_inner());
            for room in &rooms {
                if let Some(members) = all.get_mut(room) {
                    members.remove(id);
                    if members.is_empty() {
                        all.remove(room);
                    }
                }
            }
        }
        for room in &rooms {
            let _ = self.inner.presence.send(PresenceEvent::Leave { room: room.to_string(), id: *id });
        }
        if let Some(cluster) = self.cluster() {
            cluster.socket_removed(id, &rooms).await;
        }
        if self.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }

    /// IRIS `OpenServer`: a handle to the shared socket `id`, usable from any task (with a
    /// cluster, wherever the socket is held).
    pub async fn open_server(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        match self.open_local(id) {
            Err(OpenError::NotFound) => match self.cluster() {
                Some(cluster) => cluster.open_remote(id).await,
                None => Err(OpenError::NotFound),
            },
            other => other,
        }
    }

    /// `open_server` among this node's sockets only.
    pub fn open_local(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        let entry = sockets.get(id).ok_or(OpenError::NotFound)?;
        match &entry.shared {
            Some(state) => Ok(SharedHandle::local(*id, entry.mailbox.clone(), state.clone())),
            None => Err(OpenError::NotShared),
        }
    }

    /// Number of live sockets on this node.
    pub fn len(&self) -> usize {
        self.inner.sockets.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Are there no live sockets on this node?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live socket on this node.
    pub fn list(&self) -> Vec<SocketInfo> {
        self.inner
            .sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// Every live socket on this node with its label and rooms.
    pub fn snapshot(&self) -> Vec<LocalSocket> {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        sockets
            .values()
            .map(|e| LocalSocket {
                info: e.info.clone(),
                label: e.label().to_string(),
                rooms: e.rooms().iter().map(|(r, since)| (r.to_string(), *since)).collect(),
            })
            .collect()
    }

    /// One local socket's details.
    pub fn info(&self, id: &WebSocketId) -> Option<SocketInfo> {
        self.inner.sockets.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.info.clone())
    }

    /// Sends `text` to each of `ids` on this node (dedicated or shared), encoded once.
    /// Returns how many sockets took it (unknown, closed or hopelessly backlogged ones are
    /// skipped).
    pub fn broadcast<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, text: &str) -> usize {
        self.send_frame(ids, encode_server_frame(MessageKind::Text, text.as_bytes()))
    }

    /// Sends binary `data` to each of `ids`, encoded once.
    pub fn broadcast_binary<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, data: &[u8]) -> usize {
        self.send_frame(ids, encode_server_frame(MessageKind::Binary, data))
    }

    /// Sends `text` to every live socket on this node, encoded once.
    pub fn broadcast_all(&self, text: &str) -> usize {
        let frame = encode_server_frame(MessageKind::Text, text.as_bytes());
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        self.deliver(sockets.iter().map(|(id, e)| (id, &*e.mailbox)), &frame)
    }

    /// Sends an already encoded frame (from [`ws_proto::encode_server_frame`]) to `ids`.
    pub fn send_frame<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, frame: Bytes) -> usize {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        let mailboxes = ids.into_iter().filter_map(|id| sockets.get(id).map(|e| (id, &*e.mailbox)));
        self.deliver(mailboxes, &frame)
    }

    /// Queues `frame` in each mailbox; the sockets wake together a little later (see
    /// [`crate::wakes`]). Returns how many took it. A socket over its `max_queued_bytes` is
    /// closed as a slow consumer (counted and logged once), and frames for it are dropped
    /// (counted, not logged).
    fn deliver<'a>(
        &self,
        mailboxes: impl Iterator<Item = (&'a WebSocketId, &'a Mailbox)>,
        frame: &Bytes,
    ) -> usize {
        let mut wakers = Vec::new();
        let mut delivered = 0;
        for (id, mailbox) in mailboxes {
            match mailbox.push_deferred(Command::Frame(frame.clone())) {
                Ok(waker) => {
                    delivered += 1;
                    wakers.extend(waker);
                }
                Err((PushError::SlowConsumer, _)) => self.slow_consumer(id, mailbox.max_bytes()),
                Err((PushError::Dropped, _)) => {
                    self.inner.dropped_frames.fetch_add(1, Ordering::Relaxed);
                }
                Err((PushError::Closed, _)) => {}
            }
        }
        self.inner.wakes.add(wakers);
        delivered
    }

    /// Counts and logs a socket found to be a slow consumer (once per socket: the caller
    /// won [`Mailbox::mark_slow`]).
    pub(crate) fn slow_consumer(&self, id: &WebSocketId, max_bytes: usize) {
        self.inner.slow_consumer_closes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(web_socket_id = %id, max_queued_bytes = max_bytes, "slow consumer: closing the socket");
    }

    /// What the registry did about slow consumers so far.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            slow_consumer_closes: self.inner.slow_consumer_closes.load(Ordering::Relaxed),
            dropped_frames: self.inner.dropped_frames.load(Ordering::Relaxed),
        }
    }

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
        let delivered = self.deliver_to_room(room, frame.clone());
        if let Some(cluster) = self.cluster() {
            cluster.publish(room, frame);
        }
        delivered
    }

    /// Sends an encoded frame to this node's members of `room` only: how a cluster backend
    /// delivers what another node published.
    pub fn deliver_to_room(&self, room: &str, frame: Bytes) -> usize {
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

    /// Asks socket `id` to close with `code` and `reason` (dedicated sockets act on it when
    /// their `server` next reads or writes). Returns false if there is no such socket here.
    pub fn close(&self, id: &WebSocketId, code: CloseCode, reason: &str) -> bool {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        match sockets.get(id) {
            Some(e) => e.mailbox.push(Command::Close { code, reason: reason.into(), reply: None }).is_ok(),
            None => false,
        }
    }

    /// Asks every local socket to close (graceful shutdown uses 1001).
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        for e in sockets.values() {
            let _ = e.mailbox.push(Command::Close { code, reason: reason.into(), reply: None });
        }
    }

    /// Waits until no local socket is left.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.inner.emptied.notified();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dedicated socket added to `registry`, with its mailbox.
    async fn socket(registry: &Registry) -> (WebSocketId, Arc<Mailbox>) {
        let id = WebSocketId::new();
        let mailbox = Arc::new(Mailbox::default());
        let info = SocketInfo { id, class: "c".into(), session_id: "s".into(), shared: false };
        registry.insert(info, mailbox.clone(), None).await;
        (id, mailbox)
    }

    /// A socket that joined `room`: its mailbox.
    async fn member(registry: &Registry, room: &str) -> Arc<Mailbox> {
        let (id, mailbox) = socket(registry).await;
        registry.subscribe(&id, room).await;
        mailbox
    }

    #[tokio::test]
    async fn one_encoding_shared_by_every_recipient() {
        let registry = Registry::new();
        let mut boxes = Vec::new();
        for _ in 0..3 {
            let mailbox = member(&registry, "room").await;
            boxes.push(mailbox);
        }
        assert_eq!(registry.publish("room", "hello"), 3);
        let frames: Vec<Bytes> = boxes
            .iter()
            .map(|m| match m.take_all().pop_front() {
                Some(Command::Frame(f)) => f,
                _ => panic!("expected a frame"),
            })
            .collect();
        assert_eq!(&frames[0][..], &[0x81, 5, b'h', b'e', b'l', b'l', b'o']);
        // The very same buffer, not three copies.
        assert!(frames.iter().all(|f| f.as_ptr() == frames[0].as_ptr()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_several_senders_publish_at_once_wakes_each_member_once() {
        let registry = Registry::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..3 {
            let mailbox = member(&registry, "room").await;
            // A member's task: on each wake, how many frames are waiting.
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    mailbox.notified().await;
                    if tx.send(mailbox.take_all().len()).is_err() {
                        return;
                    }
                }
            });
        }
        tokio::task::yield_now().await; // the members wait
        // One sender publishes; another, ready in the same instant, publishes on its turn.
        assert_eq!(registry.publish("room", "a"), 3);
        let other = registry.clone();
        tokio::spawn(async move { other.publish("room", "b") });
        let mut wakes = Vec::new();
        while wakes.len() < 3 {
            let frames = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
            wakes.push(frames.expect("every member wakes").unwrap());
        }
        assert_eq!(wakes, [2, 2, 2], "frames waiting at each member's first wake");
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "woken again");
    }

    #[tokio::test]
    async fn rooms_forget_removed_sockets() {
        let registry = Registry::new();
        let (id, _mailbox) = socket(&registry).await;
        let mut events = registry.presence_events();
        registry.subscribe(&id, "a").await;
        registry.set_label(&id, "Alice").await;
        assert_eq!(registry.members("a"), [id]);
        let members = registry.room_members("a").await;
        assert_eq!((members[0].id, members[0].label.as_str()), (id, "Alice"));
        registry.remove(&id).await;
        assert!(registry.members("a").is_empty());
        assert!(registry.rooms().is_empty());
        assert!(!registry.subscribe(&id, "a").await);
        assert!(matches!(events.try_recv(), Ok(PresenceEvent::Join { .. })));
        assert!(
            matches!(events.try_recv(), Ok(PresenceEvent::Label { ref member, .. }) if member.label == "Alice")
        );
        assert!(matches!(events.try_recv(), Ok(PresenceEvent::Leave { .. })));
    }
}
