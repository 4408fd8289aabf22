//! How a cluster backend (ws-cluster) extends the registry across nodes: the hooks it
//! implements, a socket held by another node, and why `open_server` can fail.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ws_proto::CloseCode;

use crate::{Member, SharedHandle, SocketInfo, WebSocketId};

/// Why `open_server` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

/// Extends a [`Registry`](crate::Registry) across server nodes (implemented by ws-cluster over Redis). The
/// registry calls these hooks as local state changes; the backend delivers what other nodes
/// publish with [`Registry::deliver_to_room`](crate::Registry::deliver_to_room) and relays their presence with
/// [`Registry::emit_presence`](crate::Registry::emit_presence).
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
