//! `ws-session` is one WebSocket connection over tokio, with the semantics of InterSystems
//! IRIS `%CSP.WebSocket`: [`WebSocket::read`] pulls up to `len` characters of the next
//! message with a timeout (`Err(Timeout)` leaves the socket open; `Err(Closed)` ends it),
//! [`WebSocket::write`] pushes a message, [`WebSocket::end_server`] closes gracefully.
//!
//! It is not a server: there is no listener, routing or registry here (that is `ws-server`),
//! and the protocol itself lives in `ws-proto`. It is the adapter between the two, for both
//! roles: [`accept`] upgrades a stream you accepted yourself, [`connect`] opens a client
//! (`ws://`, or `wss://` with rustls under the `tls` feature: webpki's roots by default,
//! [`ConnectOptions::root_ca_pem`] for a private CA).
//!
//! Start with [`WebSocket`]; get one from [`accept`], [`connect`] or
//! [`WebSocket::from_upgraded`]. It is also a `futures` `Stream` of messages and a
//! `Sink<Message>`, for code written against those traits.

mod config;
mod deadline;
mod error;
mod handshake;
mod interrupt;
mod message;
mod pool;
mod socket;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use config::{Config, DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT};
pub use error::Error;
pub use handshake::{ConnectOptions, Response, accept, accept_with, client_handshake, connect};
pub use message::Message;
/// The TLS crate `wss://` uses, for [`ConnectOptions::tls_config`].
#[cfg(feature = "tls")]
pub use rustls;
pub use socket::WebSocket;
#[cfg(feature = "tls")]
pub use tls::client_config as tls_client_config;
pub use transport::{Io, Transport};

/// The seam a server built on ws-session uses (ws-server does): reading a request head under
/// the server's limits with the same loop as [`accept`], a flag another task raises to
/// interrupt a waiting read ([`WebSocket::read_interruptible`]), and one deadline kept across
/// interrupted reads. A program that only talks over sockets needs none of it.
pub mod server_support {
    pub use crate::deadline::Deadline;
    pub use crate::handshake::read_request_head;
    pub use crate::interrupt::Interrupt;
}
pub use ws_proto::{CloseCode, CloseFrame, ProtocolError, Role, Utf8Bytes};
