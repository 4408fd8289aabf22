//! Benchmarks of the WebSocket stack and the `wsload` load generator. `cargo bench -p benches`
//! runs the criterion suites in `benches/`; `wsload` drives a running server over loopback and
//! `benches/compare.sh` sets it against tokio-tungstenite and fastwebsockets (issue 6).
//! This is not a WebSocket client library: frames are built once, masked with a fixed key, and
//! the handshake is a fixed request. Start with [`Options`] and [`run`].

mod broadcast;
mod echo;
pub mod floor;
mod frame;
mod handshake;
mod histogram;
mod message;
mod options;
mod payload;
mod placement;
mod process;
mod report;
mod run;
mod socket;
mod tally;

pub use frame::{
    BINARY, CLOSE, CONTINUATION, FrameError, FrameReader, Header, Item, MASK, PING, PONG, TEXT, client_frame,
    mask_in_place,
};
pub use handshake::{HandshakeError, Target, check_response};
pub use histogram::Histogram;
pub use message::{Event, MessageReader, ProtocolError};
pub use options::{BROADCAST_TAG, MAX_CONNECTIONS, MAX_SIZE, Mode, Options, USAGE};
pub use payload::{BroadcastFrame, EchoMessages, broadcast_payload, broadcast_tag, echo_payload};
pub use placement::{CLOSE_BELOW_NS, Placement, PlacementTotals};
pub use process::{clock_ticks, cpu_time, rss_bytes, run_time_ns, stat_cpu_ticks};
pub use report::Report;
pub use run::{deadline, run};
pub use socket::{Failure, Socket};
