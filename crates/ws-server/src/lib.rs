//! `ws-server` is a WebSocket server after the InterSystems IRIS `%CSP.WebSocket` model: the
//! URL `/csp/<app>/<Package.Class>.cls` picks a registered server class; each connection gets
//! a fresh instance whose `on_pre_server`, `server` and `on_post_server` run in turn; `server`
//! pulls with `read(len, timeout)` and pushes with `write`; shared sockets are reopened from
//! any task by their `WebSocketId` with [`Registry::open_server`].
//!
//! It is not a general HTTP server (it serves a few registered pages and upgrades) and it does
//! not speak the protocol itself: `ws-session` drives each socket and `ws-proto` knows RFC
//! 6455.
//!
//! Start with [`Server::builder`] and the [`WebSocketServer`] trait.

mod class;
mod connection;
mod id;
mod mailbox;
mod registry;
mod request;
mod runtime;
mod server;
mod shared;
mod wakes;

pub use async_trait::async_trait;
pub use class::{PostServer, PreServer, Reject, WebSocketServer};
pub use connection::Connection;
pub use id::{InvalidId, WebSocketId};
pub use registry::{
    Cluster, LocalSocket, Member, OpenError, PresenceEvent, Registry, RegistryStats, RemoteSocket, SocketInfo,
};
pub use request::Request;
pub use runtime::runtime_builder;
pub use server::{OriginPolicy, Server, ServerBuilder, ServerConfig, ShutdownHandle, shutdown_signal};
pub use shared::SharedHandle;
pub use ws_proto::{CloseCode, Config as ProtocolConfig};
pub use ws_session::{Config as SocketConfig, DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error, Message};
