//! `WebSocket`: one connection's reads, writes, timers and closing handshake.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::pool;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use ws_proto::{CloseCode, Connection, MessageKind, ProtocolError, Role};

/// Payloads at least this large are written from their own buffer (vectored), not copied.
const SHARE_PAYLOAD_MIN: usize = 2048;

/// Smallest read buffer taken after an idle spell.
const MIN_READ: usize = 2048;

/// While more input waits, replies are held back (and written together) up to this much.
const COALESCE_MAX: usize = 64 << 10;

use crate::server_support::Deadline;
use crate::{Config, DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error, Message};

mod ending;
mod input;
mod output;
mod stream;

/// What one step of reading came to.
enum Step {
    Message(Message),
    Interrupted,
    Slow(Slow),
}

/// The rare outcomes of a step, handled by [`WebSocket::poll_slow`].
enum Slow {
    Close(Option<ws_proto::CloseFrame>),
    Failure(ProtocolError),
    Died(io::Error),
    Ended,
    Timer,
}

/// How the connection ended, kept to answer every later call.
#[derive(Debug, Clone)]
struct Ended {
    code: CloseCode,
    reason: String,
}

impl Ended {
    fn error(&self) -> Error {
        Error::Closed { code: self.code, reason: self.reason.clone() }
    }
}

/// One WebSocket connection over a byte stream, after the opening handshake, for either
/// role: the object a `Server()` method talks to.
///
/// Reading pulls: [`read`](WebSocket::read) waits for the next message (or the rest of one)
/// with a timeout, the way IRIS `%CSP.WebSocket.Read` does; Pings are answered, keepalive and
/// idle timers run, and queued output is written while it waits. Writing pushes one message
/// per call into a bounded buffer.
///
/// # Cancel safety
///
/// Every method is cancel-safe: all state lives in the `WebSocket`, not in the futures. Drop
/// a `read` (a `select!`, a timeout) at any point and no byte or message is lost: the next
/// `read` continues where it stopped, even in the middle of a message. A dropped `write` has
/// queued its message if it was polled once (it is sent by the next call that does I/O); a
/// dropped `close` can be called again.
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    rbuf: BytesMut,
    /// Output queued ahead of `conn.output()`: frame heads and large payloads shared
    /// without copying, written together with one vectored write.
    segments: VecDeque<Bytes>,
    segments_len: usize,
    /// The unread rest of a message after a `read` with a short `len`.
    partial: Option<Box<Message>>,
    config: Arc<Config>,
    binary_data: bool,
    /// The `Stream` has returned its end.
    stream_ended: bool,
    ended: Option<Box<Ended>>,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    /// Since when queued output has waited for the peer to accept a byte (with a
    /// `write_timeout`; the clock is read only when a write would block).
    write_stalled: Option<Instant>,
    /// One timer for every wait of this socket, re-armed only when it fires before the
    /// current deadline: a read that completes in time does no timer work at all.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Closing the transport, once begun (boxed: rare).
    finishing: Option<Box<ending::Finishing>>,
    /// Size of the last read from the transport: how much to reserve after an idle spell.
    read_hint: usize,
    protocol: Option<Box<str>>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role())
            .field("state", &self.conn.state())
            .field("protocol", &self.protocol)
            .field("buffered_amount", &(self.conn.output_len() + self.segments_len))
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose opening handshake is already done. `leftover` holds bytes read
    /// past the handshake (frames the peer sent right behind it). A client's masking keys are
    /// seeded from the operating system's random source.
    /// `config` may be shared by many sockets (`Arc<Config>`) or given by value.
    pub fn from_upgraded(
        stream: S,
        role: Role,
        config: impl Into<Arc<Config>>,
        leftover: BytesMut,
        protocol: Option<String>,
    ) -> Self {
        let config: Arc<Config> = config.into();
        let mut protocol_config = config.protocol.clone();
        if role == Role::Client {
            let mut seed = [0u8; 8];
            // Without OS randomness fall back to the clock: masking still works, it is only
            // weaker against a hostile intermediary.
            if getrandom::fill(&mut seed).is_err() {
                seed = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    .to_le_bytes();
            }
            protocol_config.mask_seed = u64::from_le_bytes(seed);
        }
        WebSocket {
            stream,
            conn: Connection::new(role, protocol_config),
            rbuf: leftover,
            segments: VecDeque::new(),
            segments_len: 0,
            partial: None,
            config,
            binary_data: false,
            stream_ended: false,
            ended: None,
            last_rx: Instant::now(),
            ping_sent: None,
            write_stalled: None,
            finishing: None,
            timer: None,
            read_hint: 0,
            protocol: protocol.map(String::into_boxed_str),
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.conn.role()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The connection's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// IRIS `BinaryData`: when set, [`write`](WebSocket::write) sends binary frames.
    pub fn set_binary_data(&mut self, binary: bool) {
        self.binary_data = binary;
    }

    /// Is `write` sending binary frames?
    pub fn binary_data(&self) -> bool {
        self.binary_data
    }

    /// Bytes queued but not yet written to the transport (the browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.conn.output_len() + self.segments_len
    }

    /// Is the connection over (closed by either side, or dead)?
    pub fn is_closed(&self) -> bool {
        self.ended.is_some()
    }

    /// How the connection ended, once it has: the close code and reason (the peer's, or this
    /// end's if the peer never answered; 1006 if it died).
    pub fn close_info(&self) -> Option<(CloseCode, &str)> {
        self.ended.as_ref().map(|e| (e.code, e.reason.as_str()))
    }

    /// Is the message last returned by [`read`](WebSocket::read) only partly read?
    pub fn message_continues(&self) -> bool {
        self.partial.is_some()
    }

    /// IRIS `Read(len, timeout)`: up to `len` characters of the next text message (bytes of a
    /// binary one), or of the rest of the message a previous `read` left unfinished. Returns
    /// `Err(Timeout)` if nothing arrived in time (the socket stays open and loses nothing),
    /// `Err(Closed { .. })` once the peer closed or the connection died. `len == 0` returns
    /// the whole message.
    // (The read methods return `async move` blocks rather than being `async fn`s: an
    // `async fn` keeps a second copy of its arguments in its future, and a waiting read's
    // future is held by every idle socket.)
    #[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
    pub fn read(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Message, Error>> + '_ {
        async move {
            if let Some(rest) = self.partial.take() {
                return Ok(self.take_piece(*rest, len));
            }
            let msg = self.next_message(Deadline::after(timeout)).await?;
            Ok(self.take_piece(msg, len))
        }
    }

    /// The first `len` characters (bytes) of `msg`, keeping the rest for the next read;
    /// `len == 0` takes it whole.
    fn take_piece(&mut self, msg: Message, len: usize) -> Message {
        // A message of at most `len` bytes has at most `len` characters: nothing to split.
        if len == 0 || msg.len() <= len {
            return msg;
        }
        let (first, rest) = msg.split_first(len);
        self.partial = rest.map(Box::new);
        first
    }

    /// Like [`read`](WebSocket::read), but returns `Ok(None)` as soon as `interrupt` is
    /// raised by another task (and nothing is lost: the next read continues). The flag is
    /// left raised for the caller to act on and clear.
    pub async fn read_interruptible(
        &mut self,
        len: usize,
        timeout: Duration,
        interrupt: &crate::server_support::Interrupt,
    ) -> Result<Option<Message>, Error> {
        self.read_interruptible_until(len, &mut Deadline::after(timeout), interrupt).await
    }

    /// [`read_interruptible`](WebSocket::read_interruptible) with a [`Deadline`] instead of a
    /// timeout, for a caller that loops and keeps one deadline: a timeout starts when the
    /// first of these reads has to wait, and `deadline` remembers the instant it fixed.
    #[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
    pub fn read_interruptible_until<'a>(
        &'a mut self,
        len: usize,
        deadline: &'a mut Deadline,
        interrupt: &'a crate::server_support::Interrupt,
    ) -> impl Future<Output = Result<Option<Message>, Error>> + 'a {
        // The loop of `next_message`, with the interrupt, written out in place: one layer
        // less in the future a waiting socket holds.
        async move {
            if let Some(rest) = self.partial.take() {
                return Ok(Some(self.take_piece(*rest, len)));
            }
            loop {
                let slow = match poll_fn(|cx| self.poll_step(cx, deadline, Some(interrupt))).await {
                    Step::Message(msg) => return Ok(Some(self.take_piece(msg, len))),
                    Step::Interrupted => return Ok(None),
                    Step::Slow(slow) => Box::pin(self.slow_step(slow, deadline.instant())),
                };
                slow.await?;
            }
        }
    }

    /// [`read`](WebSocket::read) with IRIS's defaults: 32656 characters, 86400 s.
    pub async fn read_default(&mut self) -> Result<Message, Error> {
        self.read(DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT).await
    }

    /// The next whole message (or the rest of a partly read one), waiting as long as it takes
    /// (keepalive and idle timeouts, if configured, still apply).
    pub async fn read_message(&mut self) -> Result<Message, Error> {
        self.read(0, DEFAULT_READ_TIMEOUT).await
    }

    /// Compresses this socket's messages with these permessage-deflate parameters, agreed in
    /// the handshake ([`accept`](crate::accept) and [`connect`](crate::connect) do it;
    /// a server doing its own handshake calls it after the 101). The compression level and
    /// the size below which messages go plain come from [`Config::deflate`].
    pub fn set_deflate(&mut self, params: ws_proto::DeflateParams) {
        let config = self.config.deflate.clone().unwrap_or_default();
        self.conn.set_deflate(params, &config);
    }

    /// The permessage-deflate parameters agreed in the handshake, if any.
    pub fn deflate(&self) -> Option<&ws_proto::DeflateParams> {
        self.conn.deflate()
    }

    /// Would a message of `len` bytes be compressed (permessage-deflate agreed, and not under
    /// the `min_size` of [`Config::deflate`])?
    pub fn compresses(&self, len: usize) -> bool {
        self.conn.deflate().is_some() && len >= self.config.deflate.as_ref().map_or(0, |d| d.min_size)
    }

    /// IRIS `Write`: sends one text message, or a binary one when `binary_data` is set.
    ///
    /// The message is written before `write` returns unless the peer is slow (then it stays
    /// queued, see [`buffered_amount`](WebSocket::buffered_amount)) or more input is already
    /// waiting: replies to pipelined messages are held back and written together by the next
    /// `read` (or [`flush`](WebSocket::flush)).
    pub async fn write(&mut self, data: &str) -> Result<(), Error> {
        self.output_from_pool();
        let sent =
            if self.binary_data { self.conn.send_binary(data.as_bytes()) } else { self.conn.send_text(data) };
        self.after_send(sent).await
    }

    /// Sends one binary message.
    pub async fn write_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.output_from_pool();
        let sent = self.conn.send_binary(data);
        self.after_send(sent).await
    }

    /// Sends a message of either kind. A large payload (from a received message, say) is
    /// written from its own buffer, not copied, when this end is the server.
    pub async fn write_message(&mut self, msg: &Message) -> Result<(), Error> {
        let sent = self.queue_message(msg);
        self.after_send(sent).await
    }

    /// Queues one message without writing it.
    fn queue_message(&mut self, msg: &Message) -> Result<(), ws_proto::SendError> {
        self.output_from_pool();
        if msg.len() >= SHARE_PAYLOAD_MIN && self.conn.role() == Role::Server && !self.compresses(msg.len()) {
            let (kind, payload) = match msg {
                Message::Text(t) => (MessageKind::Text, t.as_bytes().clone()),
                Message::Binary(b) => (MessageKind::Binary, b.clone()),
            };
            self.conn.send_header_only(kind, payload.len()).map(|()| self.queue_shared(payload))
        } else {
            match msg {
                Message::Text(t) => self.conn.send_text(t),
                Message::Binary(b) => self.conn.send_binary(b),
            }
        }
    }

    /// Before queuing a frame: a socket that went idle gave its output buffer back to the
    /// thread's pool (see `poll_fill`); take one from there rather than a new allocation.
    fn output_from_pool(&mut self) {
        let out = self.conn.output();
        if out.capacity() == 0 {
            *out = pool::take(&pool::WRITE, ws_proto::OUTPUT_MIN, ws_proto::OUTPUT_MIN);
        }
    }

    /// Sends a Ping (payload at most 125 bytes). The Pong arrives while reading.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.output_from_pool();
        let sent = self.conn.ping(payload);
        self.after_send(sent).await
    }

    /// Waits until everything queued is written to the transport.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.wait_written(0).await
    }

    /// IRIS `EndServer`: closes with 1000 (see [`close`](WebSocket::close)).
    pub async fn end_server(&mut self) -> Result<(), Error> {
        self.close(CloseCode::NORMAL, "").await
    }

    /// The closing handshake from this side: sends Close with `code` and `reason` (cut to
    /// 123 bytes), discards data until the peer's Close arrives or `close_timeout` passes,
    /// then closes the transport. Returns `Ok` once closed, whoever finished it; closing an
    /// already closed socket is `Ok` too.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.ended.is_some() {
            // Over, or its transport still closing (a dropped close or read left it so).
            poll_fn(|cx| self.poll_finish(cx)).await;
            return Ok(());
        }
        if !code.is_valid_on_wire() {
            return Err(Error::InvalidInput(format!("close code {code} may not be sent")));
        }
        if !self.conn.close_sent() {
            let _ = self.conn.close(Some((code, reason)));
        }
        self.partial = None;
        let deadline = Deadline::at(Instant::now() + self.config.close_timeout);
        loop {
            match self.next_message(deadline).await {
                Ok(_) => continue, // data the peer sent before it saw our Close
                Err(Error::Timeout) => {
                    // The peer never answered: give up on it (section 7.1.1 lets us close).
                    self.ended = Some(Box::new(Ended { code, reason: reason.to_owned() }));
                    self.begin_finish(Error::Closed { code, reason: reason.to_owned() });
                    poll_fn(|cx| self.poll_finish(cx)).await;
                    return Ok(());
                }
                Err(_) => {
                    // The transport ended before the peer's Close came: the close is ours.
                    if self.conn.close_received().is_none()
                        && let Some(ended) = &mut self.ended
                    {
                        **ended = Ended { code, reason: reason.to_owned() };
                    }
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_socket_lends_its_buffers_and_a_reply_after_it_allocates_none() {
        let (a, b) = tokio::io::duplex(4096);
        let mut server = WebSocket::from_upgraded(a, Role::Server, Config::default(), BytesMut::new(), None);
        let mut client = WebSocket::from_upgraded(b, Role::Client, Config::default(), BytesMut::new(), None);
        for round in 0..3 {
            client.write("hello").await.unwrap();
            let msg = server.read_message().await.unwrap();
            server.write_message(&msg).await.unwrap();
            assert_eq!(client.read_message().await.unwrap().as_text(), Some("hello"));
            // Nothing more comes: the server's read waits, and its buffers go to the pools.
            let waited = tokio::time::timeout(Duration::from_millis(5), server.read_message()).await;
            assert!(waited.is_err(), "round {round}: nothing was sent");
            assert_eq!(
                server.conn.output().capacity(),
                0,
                "round {round}: an idle socket holds no output buffer"
            );
            let (start, size) = pool::next_allocation(&pool::WRITE).expect("the output buffer was pooled");
            // The next reply is encoded into that pooled allocation, not a new one.
            client.write("again").await.unwrap();
            let msg = server.read_message().await.unwrap();
            server.write_message(&msg).await.unwrap();
            let out = server.conn.output().as_ptr() as usize;
            assert!((start..start + size).contains(&out), "round {round}: the reply took the pooled buffer");
            assert_eq!(client.read_message().await.unwrap().as_text(), Some("again"));
        }
    }
}
