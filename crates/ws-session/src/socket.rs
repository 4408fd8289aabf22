//! `WebSocket`: one connection's reads, writes, timers and closing handshake.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::pool;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use ws_proto::{CloseCode, Connection, Event, MessageKind, ProtocolError, Role, SendError, Utf8Bytes};

/// Payloads at least this large are written from their own buffer (vectored), not copied.
const SHARE_PAYLOAD_MIN: usize = 2048;

/// Smallest read buffer taken after an idle spell.
const MIN_READ: usize = 2048;

/// While more input waits, replies are held back (and written together) up to this much.
const COALESCE_MAX: usize = 64 << 10;

use crate::{Config, DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error};

/// A message, or a piece of one returned by [`WebSocket::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text (valid UTF-8).
    Text(Utf8Bytes),
    /// Bytes.
    Binary(Bytes),
}

impl Message {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Is the payload empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this text?
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Gives back the payload.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Splits off the first `len` characters (text) or bytes (binary); the rest, if any, is
    /// returned second. A character is never split. This is how `read(len, ..)` cuts a message.
    pub fn split_first(self, len: usize) -> (Message, Option<Message>) {
        match self {
            Message::Text(t) => {
                let cut = if len >= t.len() { None } else { t.char_indices().nth(len).map(|(i, _)| i) };
                match cut {
                    Some(i) => (Message::Text(t.slice(0..i)), Some(Message::Text(t.slice(i..t.len())))),
                    None => (Message::Text(t), None),
                }
            }
            Message::Binary(mut b) if len < b.len() => {
                let head = b.split_to(len);
                (Message::Binary(head), Some(Message::Binary(b)))
            }
            m => (m, None),
        }
    }
}

/// What one step of reading came to.
enum Step {
    Message(Message),
    Interrupted,
    Slow(Slow),
}

/// The rare outcomes of a step, handled by [`WebSocket::slow_step`].
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
    ended: Option<Box<Ended>>,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    /// Since when queued output has waited for the peer to accept a byte (with a
    /// `write_timeout`; the clock is read only when a write would block).
    write_stalled: Option<Instant>,
    /// One timer for every wait of this socket, re-armed only when it fires before the
    /// current deadline: a read that completes in time does no timer work at all.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
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
            ended: None,
            last_rx: Instant::now(),
            ping_sent: None,
            write_stalled: None,
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
        self.output_from_pool();
        let sent = if msg.len() >= SHARE_PAYLOAD_MIN && self.conn.role() == Role::Server {
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
        };
        self.after_send(sent).await
    }

    /// Before queuing a frame: a socket that went idle gave its output buffer back to the
    /// thread's pool (see `poll_fill`); take one from there rather than a new allocation.
    fn output_from_pool(&mut self) {
        let out = self.conn.output();
        if out.capacity() == 0 {
            *out = pool::take(&pool::WRITE, ws_proto::OUTPUT_MIN, ws_proto::OUTPUT_MIN);
        }
    }

    /// Queues `payload` as it is (not copied) after everything queued so far.
    fn queue_shared(&mut self, payload: Bytes) {
        let queued = self.conn.take_output().freeze();
        self.push_segment(queued);
        self.push_segment(payload);
    }

    fn push_segment(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.segments_len += bytes.len();
            self.segments.push_back(bytes);
        }
    }

    /// Sends frames encoded once for many sockets with [`ws_proto::encode_server_frame`]
    /// (server role only).
    /// Large frames are queued as they are (shared, not copied).
    pub async fn write_encoded(&mut self, frames: &Bytes) -> Result<(), Error> {
        let sent = self.queue_encoded_inner(frames);
        self.after_send(sent).await
    }

    /// Queues frames like [`write_encoded`](WebSocket::write_encoded) without writing them:
    /// queue several, then [`send_queued`](WebSocket::send_queued) writes them together.
    pub fn queue_encoded(&mut self, frames: &Bytes) -> Result<(), Error> {
        match self.queue_encoded_inner(frames) {
            Ok(()) => Ok(()),
            Err(_) => Err(self
                .ended
                .as_ref()
                .map(|e| e.error())
                .unwrap_or(Error::Closed { code: CloseCode::NORMAL, reason: "closing".into() })),
        }
    }

    /// Writes what is queued as far as the transport takes it now, and never waits: the
    /// next read (or [`flush`](WebSocket::flush)) writes the rest, and while more than
    /// `max_write_buffer` bytes remain the socket reads no input. The caller bounds what it
    /// queues this way (see [`buffered_amount`](WebSocket::buffered_amount)).
    pub async fn send_queued(&mut self) -> Result<(), Error> {
        match poll_fn(|cx| Poll::Ready(self.poll_write_out(cx, 0))).await {
            Poll::Ready(Err(e)) => Err(self.died(e)),
            _ => Ok(()),
        }
    }

    fn queue_encoded_inner(&mut self, frames: &Bytes) -> Result<(), SendError> {
        self.output_from_pool();
        if frames.len() >= SHARE_PAYLOAD_MIN {
            self.conn.check_send_encoded().map(|()| self.queue_shared(frames.clone()))
        } else {
            self.conn.send_encoded(frames)
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
                    self.finish_transport().await;
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

    /// Queued a frame (or failed to): write what can be written now without waiting, then
    /// wait only if the buffer is over its bound.
    async fn after_send(&mut self, sent: Result<(), SendError>) -> Result<(), Error> {
        if let Err(e) = sent {
            return Err(match e {
                SendError::Closed => match &self.ended {
                    Some(ended) => ended.error(),
                    None => Error::Closed { code: CloseCode::NORMAL, reason: "closing".into() },
                },
                SendError::ControlFrameTooLong => {
                    Error::InvalidInput("control payload over 125 bytes".into())
                }
                SendError::FragmentOrder => Error::InvalidInput("frame sent out of order".into()),
                SendError::InvalidCloseCode(c) => Error::InvalidInput(format!("close code {c}")),
            });
        }
        // With a complete frame already waiting, the caller will read again at once, and the
        // read writes the queued output before it waits: replies to pipelined messages go out
        // together in one write instead of one system call each.
        let more_input = self.conn.has_complete_frame(&self.rbuf);
        if (!more_input || self.buffered_amount() > COALESCE_MAX)
            && let Poll::Ready(Err(e)) = poll_fn(|cx| Poll::Ready(self.poll_write_out(cx, 0))).await
        {
            return Err(self.died(e));
        }
        if self.buffered_amount() > self.config.max_write_buffer {
            // A slow peer: wait in a boxed future, so every write's future stays small.
            let bound = self.config.max_write_buffer;
            Box::pin(self.wait_written(bound)).await?;
        }
        Ok(())
    }

    /// Waits until at most `limit` bytes remain queued.
    async fn wait_written(&mut self, limit: usize) -> Result<(), Error> {
        if let Some(ended) = &self.ended
            && self.buffered_amount() > 0
        {
            return Err(ended.error());
        }
        let written = poll_fn(|cx| match self.poll_write_out(cx, limit) {
            Poll::Pending => self.poll_write_timer(cx),
            done => done,
        })
        .await;
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(self.write_timed_out()),
            Err(e) => Err(self.died(e)),
        }
    }

    /// While a write waits: `TimedOut` once the peer has accepted nothing for
    /// `write_timeout` (the socket's one timer, as for reads).
    fn poll_write_timer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (Some(timeout), Some(since)) = (self.config.write_timeout, self.write_stalled) else {
            return Poll::Pending;
        };
        let due = since + timeout;
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() > due {
                    timer.as_mut().reset(due);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() < due => timer.as_mut().reset(due),
                Poll::Ready(()) => return Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            }
        }
    }

    /// The peer accepted no byte for `write_timeout`: give it up without a closing handshake
    /// (it reads nothing, so a Close frame could not reach it); queued output is freed.
    fn write_timed_out(&mut self) -> Error {
        let reason = "write timeout";
        tracing::debug!(reason, "giving the peer up");
        if self.ended.is_none() {
            self.ended = Some(Box::new(Ended { code: CloseCode::ABNORMAL, reason: reason.into() }));
        }
        // One attempt to send FIN (the stream is dropped soon anyway); nothing waits.
        let waker = std::task::Waker::noop();
        let _ = Pin::new(&mut self.stream).poll_shutdown(&mut Context::from_waker(waker));
        self.release_buffers();
        Error::Closed { code: CloseCode::ABNORMAL, reason: reason.into() }
    }

    /// Writes queued output until at most `limit` bytes remain (then flushes the stream).
    /// Segments and the output buffer go out together in one vectored write.
    fn poll_write_out(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        while self.buffered_amount() > limit {
            let out = self.conn.output();
            let written = if self.segments.is_empty() {
                Pin::new(&mut self.stream).poll_write(cx, out)
            } else {
                let mut slices: [IoSlice<'_>; 16] = [IoSlice::new(&[]); 16];
                let mut n = 0;
                for seg in self.segments.iter().take(15) {
                    slices[n] = IoSlice::new(seg);
                    n += 1;
                }
                if n == self.segments.len() && !out.is_empty() {
                    slices[n] = IoSlice::new(out);
                    n += 1;
                }
                Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n])
            };
            match written {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.advance_output(n);
                    self.write_stalled = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if self.write_stalled.is_none() && self.config.write_timeout.is_some() {
                        self.write_stalled = Some(Instant::now());
                    }
                    return Poll::Pending;
                }
            }
        }
        if self.buffered_amount() == 0 {
            return Pin::new(&mut self.stream).poll_flush(cx);
        }
        Poll::Ready(Ok(()))
    }

    /// Drops `n` written bytes from the front of the queued output.
    fn advance_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.segments.front_mut() else { break };
            if n >= front.len() {
                n -= front.len();
                self.segments_len -= front.len();
                self.segments.pop_front();
            } else {
                front.advance(n);
                self.segments_len -= n;
                return;
            }
        }
        self.conn.output().advance(n);
    }

    /// Reads more bytes into the read buffer, writing queued output meanwhile.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Poll::Ready(Err(e)) = self.poll_write_out(cx, 0) {
            return Poll::Ready(Err(e));
        }
        if self.buffered_amount() > self.config.max_write_buffer {
            // The peer is not reading: stop reading too (its Pings would pile up Pongs), and
            // wait for the write above (whose waker is registered) or the socket's timer.
            return Poll::Pending;
        }
        // Room for twice the last read, so a message of the same size (frame header
        // included) arrives in one read; a quarter of the full chunk once reads are large.
        let room = (self.read_hint * 2).clamp(64, self.config.read_chunk / 4);
        if self.rbuf.capacity() == 0 {
            // After an idle spell the buffer was given back: take one the size of the last
            // read (small for chat-sized traffic), from the thread's pool when it can.
            let want = (self.read_hint * 2).clamp(MIN_READ, self.config.read_chunk);
            self.rbuf = pool::take(&pool::READ, room, want);
        } else if self.rbuf.capacity() - self.rbuf.len() < room {
            let want = if room >= self.config.read_chunk / 4 { self.config.read_chunk } else { MIN_READ };
            self.rbuf.reserve(want);
        }
        let before = self.rbuf.len();
        let polled = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf);
        if polled.is_pending() && self.rbuf.is_empty() {
            // Idle: hold no buffers while waiting (an idle connection costs little memory);
            // they are taken again when bytes arrive.
            pool::give(&pool::READ, std::mem::take(&mut self.rbuf));
            if self.buffered_amount() == 0 {
                // The output buffer too, to the thread's other pool (the next reply takes
                // one back in `output_from_pool`).
                pool::give(&pool::WRITE, std::mem::take(self.conn.output()));
                self.conn.shrink_idle();
            }
        }
        match polled {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Poll::Ready(Ok(_)) => {
                let got = self.rbuf.len() - before;
                // A read that filled the buffer asks for the full chunk next time.
                self.read_hint =
                    if self.rbuf.capacity() == self.rbuf.len() { self.config.read_chunk } else { got };
                if self.config.keepalive_interval.is_some() || self.config.idle_timeout.is_some() {
                    self.last_rx = Instant::now();
                    self.ping_sent = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next data message, answering control frames on the way; ends the transport when
    /// the closing handshake completes or the peer breaks the protocol.
    ///
    /// The common path (a message is buffered, or bytes arrive, or nothing yet) is one plain
    /// poll function, [`poll_step`](WebSocket::poll_step); only the rare endings and timers
    /// run as boxed futures. This keeps a waiting read's future, which an idle socket holds
    /// for its whole life, a few dozen bytes, and each message a single poll.
    /// ([`read_interruptible_until`](WebSocket::read_interruptible_until) runs the same loop
    /// with an interrupt.)
    #[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
    fn next_message(&mut self, mut deadline: Deadline) -> impl Future<Output = Result<Message, Error>> + '_ {
        async move {
            loop {
                let slow = match poll_fn(|cx| self.poll_step(cx, &mut deadline, None)).await {
                    Step::Message(msg) => return Ok(msg),
                    Step::Interrupted => continue, // not reached: there is no interrupt to raise
                    Step::Slow(slow) => Box::pin(self.slow_step(slow, deadline.instant())),
                };
                slow.await?;
            }
        }
    }

    /// Parses what is buffered; when that is no message, reads (writing queued output
    /// meanwhile) and waits for bytes, `interrupt` or the socket's timer. The clock is read
    /// and the interrupt's waker stored only when there is nothing to do but wait: a read
    /// whose message is already buffered (pipelined input) does neither.
    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        deadline: &mut Deadline,
        interrupt: Option<&crate::server_support::Interrupt>,
    ) -> Poll<Step> {
        loop {
            match self.conn.poll_event(&mut self.rbuf) {
                Ok(Some(Event::Text(t))) => return Poll::Ready(Step::Message(Message::Text(t))),
                Ok(Some(Event::Binary(b))) => return Poll::Ready(Step::Message(Message::Binary(b))),
                Ok(Some(Event::Ping(_))) => continue, // the Pong is queued; poll_fill sends it
                Ok(Some(Event::Pong(_))) => {
                    self.ping_sent = None;
                    continue;
                }
                Ok(Some(Event::Close(frame))) => return Poll::Ready(Step::Slow(Slow::Close(frame))),
                Err(error) => return Poll::Ready(Step::Slow(Slow::Failure(error))),
                Ok(None) => {}
            }
            if self.ended.is_some() {
                return Poll::Ready(Step::Slow(Slow::Ended));
            }
            if interrupt.is_some_and(|i| i.is_raised()) {
                return Poll::Ready(Step::Interrupted);
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Slow(Slow::Died(e))),
                Poll::Pending => {}
            }
            if let Some(interrupt) = interrupt {
                // Registered, then checked again: a raise in between is not missed.
                interrupt.register(cx.waker());
                if interrupt.is_raised() {
                    return Poll::Ready(Step::Interrupted);
                }
            }
            // The socket's one timer: created on first use, moved earlier only when needed;
            // when it fires before `wake` (armed for an earlier read) it moves to `wake`.
            let wake = self.next_timer(deadline.instant());
            let timer = match &mut self.timer {
                Some(timer) => {
                    if timer.deadline() > wake {
                        timer.as_mut().reset(wake);
                    }
                    timer
                }
                None => self.timer.insert(Box::pin(tokio::time::sleep_until(wake))),
            };
            loop {
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if Instant::now() < wake => timer.as_mut().reset(wake),
                    Poll::Ready(()) => return Poll::Ready(Step::Slow(Slow::Timer)),
                }
            }
        }
    }

    /// The rare outcomes of a step: the peer's Close, a protocol failure, a dead transport,
    /// a timer. `Ok` means "read on".
    async fn slow_step(&mut self, slow: Slow, deadline: Instant) -> Result<(), Error> {
        match slow {
            Slow::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (f.code, f.reason),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                tracing::debug!(%code, %reason, "peer closed");
                self.ended = Some(Box::new(Ended { code, reason }));
                self.finish_transport().await;
                Err(self.ended.as_ref().map(|e| e.error()).unwrap_or(Error::Timeout))
            }
            Slow::Failure(error) => Err(self.protocol_failure(error).await),
            Slow::Died(e) => Err(self.died(e)),
            Slow::Ended => Err(self.ended.as_ref().map(|e| e.error()).unwrap_or(Error::Timeout)),
            Slow::Timer => self.on_timer(deadline).await,
        }
    }

    async fn protocol_failure(&mut self, error: ProtocolError) -> Error {
        let code = error.close_code();
        tracing::debug!(%error, "failing the connection");
        self.ended = Some(Box::new(Ended { code, reason: error.reason().into() }));
        self.finish_transport().await;
        Error::Protocol { error, code }
    }

    /// The transport died: no Close frame will come (code 1006).
    fn died(&mut self, e: io::Error) -> Error {
        let eof = e.kind() == io::ErrorKind::UnexpectedEof;
        if self.ended.is_none() {
            self.ended = Some(Box::new(Ended { code: CloseCode::ABNORMAL, reason: String::new() }));
        }
        self.release_buffers();
        if eof { Error::Closed { code: CloseCode::ABNORMAL, reason: String::new() } } else { Error::Io(e) }
    }

    fn next_timer(&self, deadline: Instant) -> Instant {
        let mut wake = deadline;
        if let Some(interval) = self.config.keepalive_interval {
            let due = match self.ping_sent {
                Some(at) => at + self.config.keepalive_timeout,
                None => self.last_rx + interval,
            };
            wake = wake.min(due);
        }
        if let Some(idle) = self.config.idle_timeout {
            wake = wake.min(self.last_rx + idle);
        }
        if let (Some(timeout), Some(since)) = (self.config.write_timeout, self.write_stalled) {
            wake = wake.min(since + timeout);
        }
        wake
    }

    async fn on_timer(&mut self, deadline: Instant) -> Result<(), Error> {
        let now = Instant::now();
        if let (Some(timeout), Some(since)) = (self.config.write_timeout, self.write_stalled)
            && now >= since + timeout
        {
            return Err(self.write_timed_out());
        }
        if let Some(idle) = self.config.idle_timeout
            && now >= self.last_rx + idle
        {
            return Err(self.give_up(CloseCode::GOING_AWAY, "idle timeout").await);
        }
        if let Some(interval) = self.config.keepalive_interval {
            match self.ping_sent {
                Some(at) if now >= at + self.config.keepalive_timeout => {
                    return Err(self.give_up(CloseCode::GOING_AWAY, "keepalive timeout").await);
                }
                None if now >= self.last_rx + interval && self.conn.ping(b"").is_ok() => {
                    self.ping_sent = Some(now);
                }
                _ => {}
            }
        }
        if now >= deadline { Err(Error::Timeout) } else { Ok(()) }
    }

    /// Closes on a timer: a best-effort Close frame, then the transport.
    async fn give_up(&mut self, code: CloseCode, reason: &str) -> Error {
        tracing::debug!(%code, reason, "closing");
        let _ = self.conn.close(Some((code, reason)));
        self.ended = Some(Box::new(Ended { code, reason: reason.into() }));
        self.finish_transport().await;
        Error::Closed { code, reason: reason.into() }
    }

    /// After the closing handshake or a failure: flush, then close TCP. The server closes
    /// first (section 7.1.1) and then reads until the client's FIN (bounded by
    /// `linger_timeout`), so unread input does not turn the close into a reset that could
    /// destroy the Close frame in flight; the client waits for the server's FIN first
    /// (bounded by `close_timeout`).
    async fn finish_transport(&mut self) {
        let role = self.conn.role();
        let _ = tokio::time::timeout(self.config.close_timeout, async {
            poll_fn(|cx| self.poll_write_out(cx, 0)).await?;
            if role == Role::Client {
                self.drain_until_eof().await;
            }
            self.stream.shutdown().await
        })
        .await;
        if role == Role::Server {
            let _ = tokio::time::timeout(self.config.linger_timeout, self.drain_until_eof()).await;
        }
        self.release_buffers();
    }

    async fn drain_until_eof(&mut self) {
        loop {
            self.rbuf.clear();
            match poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(()) => continue,
                Err(_) => return,
            }
        }
    }

    fn release_buffers(&mut self) {
        self.rbuf = BytesMut::new();
        self.partial = None;
        if self.ended.is_some() {
            self.conn.output().clear();
            self.segments.clear();
            self.segments_len = 0;
            self.write_stalled = None;
        }
        self.conn.shrink_idle();
    }
}

/// When a read stops waiting: a fixed instant, or a timeout that starts when the read first
/// has to wait. A read that finds its message already buffered (pipelined input, the rest of
/// a burst) then never reads the clock, and the difference from starting the timeout at the
/// call is the time spent parsing what was buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(DeadlineKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeadlineKind {
    At(Instant),
    /// Nanoseconds (a `Duration` would make the type 24 bytes instead of 16, and a waiting
    /// read holds one).
    After(u64),
}

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(DeadlineKind::At(instant))
    }

    /// A deadline `timeout` after the read first has to wait (timeouts past a year count as
    /// a year).
    pub fn after(timeout: Duration) -> Self {
        Deadline(DeadlineKind::After(timeout.min(MAX_TIMEOUT).as_nanos() as u64))
    }

    /// The instant, fixing it from the clock now if it was a timeout not yet started.
    pub fn instant(&mut self) -> Instant {
        match self.0 {
            DeadlineKind::At(at) => at,
            DeadlineKind::After(timeout) => {
                let at = Instant::now() + Duration::from_nanos(timeout);
                self.0 = DeadlineKind::At(at);
                at
            }
        }
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Self {
        Deadline::at(instant)
    }
}

/// The longest timeout a read keeps (a year: "forever" without overflowing `Instant`).
const MAX_TIMEOUT: Duration = Duration::from_secs(86400 * 365);

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
