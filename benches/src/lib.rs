//! Benchmarks of the WebSocket stack and the `wsload` load generator. `cargo bench -p benches`
//! runs the criterion suites in `benches/`; `wsload` drives a running server over loopback
//! (`ws://` or `wss://`) and `benches/compare.sh` sets it against tokio-tungstenite (also over
//! tokio-rustls), fastwebsockets, Node's `ws` (permessage-deflate) and a bare epoll floor (the
//! method and the latest figures: `benches/README.md`).
//! This is not a WebSocket client library: frames are built once, masked with a fixed key, and
//! the handshake is a fixed request. Start with [`Options`] and [`run`].

mod broadcast;
mod chat;
mod connect;
mod deflate;
mod echo;
pub mod floor;
mod frame;
mod handshake;
mod listen;
mod message;
mod options;
mod payload;
mod process;
mod report;
mod run;
mod socket;
mod tally;
mod tls;

pub use chat::{CHAT_SIZE, chat_payload, chat_tag};
pub use deflate::{Codec, DeflateOffer, Incoming, chromium_offer};
pub use frame::{
    BINARY, CLOSE, CONTINUATION, FrameError, FrameReader, Header, Item, MASK, PING, PONG, TEXT, client_frame,
    mask_in_place, push_client_frame,
};
pub use handshake::{HandshakeError, Target, check_response, header_values};
pub use listen::{listen, listen_with};
pub use message::{Event, MessageReader, ProtocolError};
pub use options::{BROADCAST_TAG, MAX_CONNECTIONS, MAX_SIZE, Mode, Options, Payload};
pub use payload::{BroadcastFrame, EchoMessages, broadcast_payload, broadcast_tag, echo_payload};
pub use process::{clock_ticks, cpu_time, rss_bytes, stat_cpu_ticks};
pub use report::Report;
pub use run::{deadline, run};
pub use socket::{Connector, Failure, Outbox, Socket, Wire, wire};
pub use tls::{ALPN, TestCerts, client_config, server_config, test_ca};
