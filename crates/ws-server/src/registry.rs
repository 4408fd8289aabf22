//! The registry of live sockets: `open_server(id)` for shared ones, listing, rooms with
//! presence, and broadcast with one encoded frame for every recipient. A [`Cluster`] backend
//! (ws-cluster) extends it across nodes behind the same API.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, broadcast};
use ws_proto::{CloseCode, MessageKind, encode_server_frame};

use crate::frame::PushedFrame;

use crate::mailbox::{Command, Mailbox, PushError};
use crate::shared::{SharedHandle, SharedState};
use crate::wakes::DeferredWakes;
use crate::{Cluster, OpenError, PresenceEvent, WebSocketId};

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

/// A room's members on this node, with their mailboxes.
pub(crate) type RoomMembers = HashMap<WebSocketId, Arc<Mailbox>>;

pub(crate) struct Entry {
    pub(crate) info: SocketInfo,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) shared: Option<Arc<SharedState>>,
    /// Rooms and label, allocated on first use: most sockets have neither, and every entry
    /// stays small in the table.
    pub(crate) extra: Option<Box<Extra>>,
}

#[derive(Default)]
pub(crate) struct Extra {
    /// Each room with the time the socket joined it (ms since the epoch).
    pub(crate) rooms: Vec<(Arc<str>, u64)>,
    pub(crate) label: String,
}

impl Entry {
    pub(crate) fn label(&self) -> &str {
        self.extra.as_ref().map_or("", |x| &x.label)
    }

    pub(crate) fn rooms(&self) -> &[(Arc<str>, u64)] {
        self.extra.as_ref().map_or(&[], |x| &x.rooms)
    }

    pub(crate) fn joined(&self, room: &str) -> Option<u64> {
        self.rooms().iter().find(|(r, _)| &**r == room).map(|&(_, since)| since)
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extra {
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

pub(crate) struct Inner {
    pub(crate) sockets: RwLock<HashMap<WebSocketId, Entry>>,
    /// Each room's members with their mailboxes, so a publish goes straight to them.
    pub(crate) rooms: RwLock<HashMap<Arc<str>, RoomMembers>>,
    pub(crate) emptied: Notify,
    pub(crate) presence: broadcast::Sender<PresenceEvent>,
    pub(crate) cluster: OnceLock<Arc<dyn Cluster>>,
    /// Wakes of sockets sent a frame, held back so each writes what many senders queued.
    pub(crate) wakes: Arc<DeferredWakes>,
    pub(crate) slow_consumer_closes: AtomicU64,
    pub(crate) dropped_frames: AtomicU64,
    /// What the cluster backend reports for the metrics.
    pub(crate) cluster_stats: crate::metrics::ClusterStats,
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
            cluster_stats: Default::default(),
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
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sockets", &self.len())
            .field("clustered", &self.cluster().is_some())
            .finish()
    }
}

pub(crate) fn now_ms() -> u64 {
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

    pub(crate) fn cluster(&self) -> Option<&Arc<dyn Cluster>> {
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
        let frame = PushedFrame::new(encode_server_frame(MessageKind::Text, text.as_bytes()));
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        self.deliver(sockets.iter().map(|(id, e)| (id, &*e.mailbox)), &frame)
    }

    /// Sends an already encoded frame (from [`ws_proto::encode_server_frame`]) to `ids`.
    /// For the sockets that agreed to permessage-deflate a single text or binary frame is
    /// compressed once, for all of them.
    pub fn send_frame<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, frame: Bytes) -> usize {
        let frame = PushedFrame::new(frame);
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        let mailboxes = ids.into_iter().filter_map(|id| sockets.get(id).map(|e| (id, &*e.mailbox)));
        self.deliver(mailboxes, &frame)
    }

    /// Queues `frame` in each mailbox; the sockets wake together a little later (see
    /// [`crate::wakes`]). Returns how many took it. A socket over its `max_queued_bytes` is
    /// closed as a slow consumer (counted and logged once), and frames for it are dropped
    /// (counted, not logged).
    pub(crate) fn deliver<'a>(
        &self,
        mailboxes: impl Iterator<Item = (&'a WebSocketId, &'a Mailbox)>,
        frame: &PushedFrame,
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
                Some(Command::Frame(f)) => Bytes::clone(&f),
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
