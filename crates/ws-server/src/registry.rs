//! The registry of live sockets: `open_server(id)` for shared ones, listing, rooms, and
//! broadcast with one encoded frame for every recipient.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::Notify;
use ws_proto::{CloseCode, MessageKind, encode_server_frame};

use crate::WebSocketId;
use crate::mailbox::{Command, Mailbox, PushError};
use crate::shared::{SharedHandle, SharedState};

/// Why `open_server` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// No live socket has this id.
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

pub(crate) struct Entry {
    pub(crate) info: SocketInfo,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) shared: Option<Arc<SharedState>>,
    rooms: HashSet<Arc<str>>,
}

#[derive(Default)]
struct Inner {
    sockets: RwLock<HashMap<WebSocketId, Entry>>,
    rooms: RwLock<HashMap<Arc<str>, HashSet<WebSocketId>>>,
    emptied: Notify,
}

/// The sockets of one server, reachable from any task: clone it freely (it is an `Arc`).
///
/// A message sent to many sockets ([`broadcast`](Registry::broadcast),
/// [`publish`](Registry::publish)) is encoded into one frame once; every recipient gets the
/// same buffer.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("sockets", &self.len()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn insert(&self, info: SocketInfo, mailbox: Arc<Mailbox>, shared: Option<Arc<SharedState>>) {
        let id = info.id;
        let entry = Entry { info, mailbox, shared, rooms: HashSet::new() };
        self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).insert(id, entry);
    }

    pub(crate) fn remove(&self, id: &WebSocketId) {
        let entry = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        if let Some(entry) = entry {
            let mut rooms = self.inner.rooms.write().unwrap_or_else(|e| e.into_inner());
            for room in entry.rooms {
                if let Some(members) = rooms.get_mut(&room) {
                    members.remove(id);
                    if members.is_empty() {
                        rooms.remove(&room);
                    }
                }
            }
        }
        if self.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }

    /// IRIS `OpenServer`: a handle to the shared socket `id`, usable from any task.
    pub fn open_server(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        let entry = sockets.get(id).ok_or(OpenError::NotFound)?;
        match &entry.shared {
            Some(state) => Ok(SharedHandle::new(*id, entry.mailbox.clone(), state.clone())),
            None => Err(OpenError::NotShared),
        }
    }

    /// Number of live sockets.
    pub fn len(&self) -> usize {
        self.inner.sockets.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Are there no live sockets?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live socket.
    pub fn list(&self) -> Vec<SocketInfo> {
        self.inner
            .sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// One socket's details.
    pub fn info(&self, id: &WebSocketId) -> Option<SocketInfo> {
        self.inner.sockets.read().unwrap_or_else(|e| e.into_inner()).get(id).map(|e| e.info.clone())
    }

    /// Sends `text` to each of `ids` (dedicated or shared), encoded once. Returns how many
    /// sockets took it (unknown, closed or hopelessly backlogged ones are skipped).
    pub fn broadcast<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, text: &str) -> usize {
        self.send_frame(ids, encode_server_frame(MessageKind::Text, text.as_bytes()))
    }

    /// Sends binary `data` to each of `ids`, encoded once.
    pub fn broadcast_binary<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, data: &[u8]) -> usize {
        self.send_frame(ids, encode_server_frame(MessageKind::Binary, data))
    }

    /// Sends `text` to every live socket, encoded once.
    pub fn broadcast_all(&self, text: &str) -> usize {
        let frame = encode_server_frame(MessageKind::Text, text.as_bytes());
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        sockets.values().filter(|e| push_frame(&e.mailbox, &frame)).count()
    }

    /// Sends an already encoded frame (from [`ws_proto::encode_server_frame`]) to `ids`.
    pub fn send_frame<'a>(&self, ids: impl IntoIterator<Item = &'a WebSocketId>, frame: Bytes) -> usize {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        ids.into_iter().filter_map(|id| sockets.get(id)).filter(|e| push_frame(&e.mailbox, &frame)).count()
    }

    /// Adds socket `id` to `room`. Returns false if there is no such socket.
    pub fn subscribe(&self, id: &WebSocketId, room: &str) -> bool {
        let mut sockets = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = sockets.get_mut(id) else { return false };
        let room: Arc<str> = room.into();
        entry.rooms.insert(room.clone());
        self.inner.rooms.write().unwrap_or_else(|e| e.into_inner()).entry(room).or_default().insert(*id);
        true
    }

    /// Removes socket `id` from `room`.
    pub fn unsubscribe(&self, id: &WebSocketId, room: &str) {
        if let Some(entry) = self.inner.sockets.write().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            entry.rooms.remove(room);
        }
        let mut rooms = self.inner.rooms.write().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// The sockets in `room`.
    pub fn members(&self, room: &str) -> Vec<WebSocketId> {
        let rooms = self.inner.rooms.read().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).map(|m| m.iter().copied().collect()).unwrap_or_default()
    }

    /// The rooms that have members.
    pub fn rooms(&self) -> Vec<String> {
        self.inner.rooms.read().unwrap_or_else(|e| e.into_inner()).keys().map(|r| r.to_string()).collect()
    }

    /// Sends `text` to every socket in `room`, encoded once. Returns how many took it.
    pub fn publish(&self, room: &str, text: &str) -> usize {
        let members = self.members(room);
        self.broadcast(&members, text)
    }

    /// Asks socket `id` to close with `code` and `reason` (dedicated sockets act on it when
    /// their `server` next reads or writes). Returns false if there is no such socket.
    pub fn close(&self, id: &WebSocketId, code: CloseCode, reason: &str) -> bool {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        match sockets.get(id) {
            Some(e) => e.mailbox.push(Command::Close { code, reason: reason.into(), reply: None }).is_ok(),
            None => false,
        }
    }

    /// Asks every socket to close (graceful shutdown uses 1001).
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        let sockets = self.inner.sockets.read().unwrap_or_else(|e| e.into_inner());
        for e in sockets.values() {
            let _ = e.mailbox.push(Command::Close { code, reason: reason.into(), reply: None });
        }
    }

    /// Waits until no socket is left.
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

fn push_frame(mailbox: &Mailbox, frame: &Bytes) -> bool {
    match mailbox.push(Command::Frame(frame.clone())) {
        Ok(()) => true,
        Err((PushError::Full, _)) => {
            tracing::warn!("a socket's mailbox is full: message dropped for it");
            false
        }
        Err((PushError::Closed, _)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoding_shared_by_every_recipient() {
        let registry = Registry::new();
        let mut boxes = Vec::new();
        for _ in 0..3 {
            let id = WebSocketId::new();
            let mailbox = Arc::new(Mailbox::default());
            let info = SocketInfo { id, class: "c".into(), session_id: "s".into(), shared: false };
            registry.insert(info, mailbox.clone(), None);
            registry.subscribe(&id, "room");
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

    #[test]
    fn rooms_forget_removed_sockets() {
        let registry = Registry::new();
        let id = WebSocketId::new();
        let info = SocketInfo { id, class: "c".into(), session_id: "s".into(), shared: false };
        registry.insert(info, Arc::new(Mailbox::default()), None);
        registry.subscribe(&id, "a");
        assert_eq!(registry.members("a"), [id]);
        registry.remove(&id);
        assert!(registry.members("a").is_empty());
        assert!(registry.rooms().is_empty());
        assert!(!registry.subscribe(&id, "a"));
    }
}
