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
//! Every byte it holds for a peer is bounded and its defaults are safe: pushed frames past
//! [`ServerConfig::max_queued_bytes`] close a slow consumer with 1008, a socket's output is
//! bounded by `max_write_buffer` (then it stops reading) and given up after `write_timeout`,
//! pending handshakes and connections are capped (503), a browser's request from another site
//! gets 403 ([`OriginPolicy::SameHost`]), and [`Server::run_until`] stops gracefully (1001 to
//! every socket) on a signal such as [`shutdown_signal`].
//!
//! **Transports.** The listener speaks plain TCP or, with
//! [`ServerBuilder::tls_pem_files`] or [`ServerBuilder::tls_config`] (the `tls` feature, on
//! by default), TLS through rustls: https pages and wss sockets on one port, certificate files
//! reloaded without a restart. Without a listener, [`ServerBuilder::build`] gives an
//! [`Endpoint`] that serves any stream you accept yourself, or (the `hyper` feature) takes
//! upgrade requests from a hyper or axum application, so a `Router` serves the classes next
//! to its own routes. Every entry shares one registry, one set of limits and one shutdown.
//!
//! Sockets run on [`Transport`], an enum rather than a type parameter: a `TcpStream` stays
//! on its direct path (one predictable branch per read or write: the echo path costs what
//! it did on a bare `TcpStream`, measured in `benches/README.md`), and every other stream is
//! boxed once. Generics would have made [`Connection`], the registry's handles and every
//! server class generic over the stream for no measurable gain.
//!
//! Start with [`Server::builder`] and the [`WebSocketServer`] trait.

mod admin;
mod builder;
mod class;
mod cluster;
mod config;
mod connection;
mod endpoint;
mod frame;
#[cfg(feature = "hyper")]
mod hyper;
mod id;
mod lifecycle;
mod mailbox;
mod metrics;
mod registry;
mod request;
mod rooms;
mod runtime;
mod server;
mod shared;
mod slot;
#[cfg(feature = "tls")]
mod tls;
mod upgrade;
mod wakes;

pub use async_trait::async_trait;
pub use builder::ServerBuilder;
pub use class::{PostServer, PreServer, Reject, WebSocketServer};
pub use cluster::{Cluster, OpenError, RemoteSocket};
pub use config::{DEFAULT_MAX_MESSAGE, OriginPolicy, ServerConfig, default_deflate};
pub use connection::Connection;
pub use endpoint::Endpoint;
pub use id::{InvalidId, WebSocketId};
pub use metrics::ClusterStats;
pub use registry::{LocalSocket, Registry, RegistryStats, SocketInfo};
pub use request::Request;
pub use rooms::{Member, PresenceEvent};
pub use runtime::runtime_builder;
/// The TLS crate of [`ServerBuilder::tls_config`].
#[cfg(feature = "tls")]
pub use rustls;
pub use server::{Server, ShutdownHandle, shutdown_signal};
pub use shared::SharedHandle;
pub use ws_proto::{CloseCode, Config as ProtocolConfig, DeflateConfig, DeflateParams};
pub use ws_session::{
    Config as SocketConfig, DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error, Message, Transport,
};
