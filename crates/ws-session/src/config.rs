//! Per-connection settings.

use std::time::Duration;

/// `read`'s default length, after IRIS `%CSP.WebSocket.Read` (32656 characters).
pub const DEFAULT_READ_LEN: usize = 32656;

/// `read`'s default timeout, after IRIS (86400 s, one day).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(86400);

/// Settings of one connection. `Config::default()` suits a server; every field is public,
/// and each has a setter:
///
/// ```
/// use std::time::Duration;
/// let config = ws_session::Config::default()
///     .max_message_size(1 << 20)
///     .idle_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(config.protocol.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Protocol limits (max frame and message size) and automatic pongs.
    pub protocol: ws_proto::Config,
    /// Bound on the bytes queued for the peer, whatever queued them (writes, frames pushed
    /// by other tasks, Pongs, the Close): over it a write waits for the peer to read instead
    /// of buffering more, and the socket stops reading input (so a peer that sends Pings and
    /// never reads cannot make the Pongs pile up; only its latest Ping is answered). A slow
    /// reader cannot make memory grow without bound.
    pub max_write_buffer: usize,
    /// A socket whose peer accepts no bytes for this long while output waits is given up:
    /// its transport is closed (close code 1006, reason `write timeout`). `None`: wait as
    /// long as it takes.
    pub write_timeout: Option<Duration>,
    /// Most read from the transport at a time. Buffers are given back while a socket is idle
    /// and sized from the last read, so this bounds busy sockets only.
    pub read_chunk: usize,
    /// How long `end_server`/`close` wait for the peer's Close (and for the TCP close).
    pub close_timeout: Duration,
    /// After the server closes TCP, how long it keeps reading (and discarding) until the
    /// client's FIN, so that unread input does not turn the close into a reset that could
    /// destroy the Close frame in flight.
    pub linger_timeout: Duration,
    /// How long the opening handshake may take.
    pub handshake_timeout: Duration,
    /// Largest opening handshake accepted, in bytes.
    pub max_handshake_size: usize,
    /// Send a Ping when nothing was received for this long (while a read waits).
    pub keepalive_interval: Option<Duration>,
    /// After a keepalive Ping, how long to wait for any frame before giving the peer up.
    pub keepalive_timeout: Duration,
    /// Close with 1001 when nothing was received for this long (while a read waits).
    pub idle_timeout: Option<Duration>,
    /// permessage-deflate (RFC 7692): `None` (the default here) neither offers nor accepts
    /// it. A client offers what this says; a server ([`accept`](crate::accept), ws-server)
    /// applies it as its policy to the client's offers. What each mode costs per socket is
    /// in [`ws_proto::DeflateConfig`]'s docs.
    pub deflate: Option<ws_proto::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            protocol: ws_proto::Config::default(),
            max_write_buffer: 1 << 20,
            write_timeout: Some(Duration::from_secs(30)),
            read_chunk: 64 << 10,
            close_timeout: Duration::from_secs(5),
            linger_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            max_handshake_size: 16 << 10,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: None,
            deflate: None,
        }
    }
}

impl Config {
    /// Sets [`deflate`](Config::deflate).
    pub fn deflate(mut self, value: Option<ws_proto::DeflateConfig>) -> Self {
        self.deflate = value;
        self
    }

    /// Sets [`protocol`](Config::protocol).
    pub fn protocol(mut self, value: ws_proto::Config) -> Self {
        self.protocol = value;
        self
    }

    /// Sets [`max_write_buffer`](Config::max_write_buffer).
    pub fn max_write_buffer(mut self, value: usize) -> Self {
        self.max_write_buffer = value;
        self
    }

    /// Sets [`write_timeout`](Config::write_timeout).
    pub fn write_timeout(mut self, value: Option<Duration>) -> Self {
        self.write_timeout = value;
        self
    }

    /// Sets [`read_chunk`](Config::read_chunk).
    pub fn read_chunk(mut self, value: usize) -> Self {
        self.read_chunk = value;
        self
    }

    /// Sets [`close_timeout`](Config::close_timeout).
    pub fn close_timeout(mut self, value: Duration) -> Self {
        self.close_timeout = value;
        self
    }

    /// Sets [`linger_timeout`](Config::linger_timeout).
    pub fn linger_timeout(mut self, value: Duration) -> Self {
        self.linger_timeout = value;
        self
    }

    /// Sets [`handshake_timeout`](Config::handshake_timeout).
    pub fn handshake_timeout(mut self, value: Duration) -> Self {
        self.handshake_timeout = value;
        self
    }

    /// Sets [`max_handshake_size`](Config::max_handshake_size).
    pub fn max_handshake_size(mut self, value: usize) -> Self {
        self.max_handshake_size = value;
        self
    }

    /// Sets [`keepalive_interval`](Config::keepalive_interval).
    pub fn keepalive_interval(mut self, value: Option<Duration>) -> Self {
        self.keepalive_interval = value;
        self
    }

    /// Sets [`keepalive_timeout`](Config::keepalive_timeout).
    pub fn keepalive_timeout(mut self, value: Duration) -> Self {
        self.keepalive_timeout = value;
        self
    }

    /// Sets [`idle_timeout`](Config::idle_timeout).
    pub fn idle_timeout(mut self, value: Option<Duration>) -> Self {
        self.idle_timeout = value;
        self
    }

    /// Sets the protocol's largest message (see [`ws_proto::Config::max_message_size`]).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.protocol.max_message_size = bytes;
        self
    }

    /// Sets the protocol's largest frame (see [`ws_proto::Config::max_frame_size`]).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.protocol.max_frame_size = bytes;
        self
    }
}
