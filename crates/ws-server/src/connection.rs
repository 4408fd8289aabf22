//! `Connection`: what a server class's `server` method talks to.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ws_proto::CloseCode;
use ws_session::Transport;
use ws_session::{DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error, Message, WebSocket};

use crate::mailbox::{Command, Mailbox, Pushed, close_slow, queue_pushed};
use crate::metrics::Meter;
use crate::{Registry, SharedHandle, WebSocketId};

enum Kind {
    /// Owned by this task: reads and writes go straight to the stream. (Boxed: it keeps the
    /// connection's task small, at the price of one pointer hop per call.)
    Dedicated { ws: Box<WebSocket<Transport>>, mailbox: Arc<Mailbox> },
    /// Driven by the socket's own task, reached through a handle. (Boxed: it keeps every
    /// dedicated socket's `Connection` small.)
    Shared(Box<SharedHandle>),
}

/// One client's socket as its `server` method sees it: IRIS `Read`, `Write`, `BinaryData`,
/// `EndServer`, `WebSocketID` and `SessionId`.
///
/// A dedicated socket (the default) is owned by the `server` task, with no channel between
/// it and the stream. While `read` waits it also delivers what other tasks sent this socket
/// (broadcasts, room messages) and acts on a server shutdown.
pub struct Connection {
    id: WebSocketId,
    session_id: Arc<str>,
    registry: Registry,
    binary_data: bool,
    kind: Kind,
    /// A dedicated socket's message counters, when metrics are on (a shared socket's driver
    /// counts its own).
    meter: Option<Meter>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("id", &self.id).field("shared", &self.is_shared()).finish()
    }
}

impl Connection {
    pub(crate) fn dedicated(
        id: WebSocketId,
        session_id: Arc<str>,
        registry: Registry,
        ws: Box<WebSocket<Transport>>,
        mailbox: Arc<Mailbox>,
    ) -> Self {
        let kind = Kind::Dedicated { ws, mailbox };
        Connection { id, session_id, registry, binary_data: false, kind, meter: None }
    }

    pub(crate) fn shared(
        id: WebSocketId,
        session_id: Arc<str>,
        registry: Registry,
        handle: SharedHandle,
    ) -> Self {
        let kind = Kind::Shared(Box::new(handle));
        Connection { id, session_id, registry, binary_data: false, kind, meter: None }
    }

    pub(crate) fn with_meter(mut self, meter: Option<Meter>) -> Self {
        self.meter = meter;
        self
    }

    pub(crate) fn take_meter(&mut self) -> Option<Meter> {
        self.meter.take()
    }

    /// IRIS `WebSocketID`: this socket's unique id.
    pub fn web_socket_id(&self) -> WebSocketId {
        self.id
    }

    /// IRIS `SessionId`: the hosting HTTP session's id (from the session cookie).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub(crate) fn session_id_arc(&self) -> &Arc<str> {
        &self.session_id
    }

    /// The server's registry: other sockets, rooms, broadcast.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Was this socket made shared in `on_pre_server`?
    pub fn is_shared(&self) -> bool {
        matches!(self.kind, Kind::Shared(_))
    }

    /// The subprotocol agreed in the handshake (dedicated sockets).
    pub fn protocol(&self) -> Option<&str> {
        match &self.kind {
            Kind::Dedicated { ws, .. } => ws.protocol(),
            Kind::Shared(_) => None,
        }
    }

    /// IRIS `BinaryData`: when set, `write` sends binary frames.
    pub fn set_binary_data(&mut self, binary: bool) {
        self.binary_data = binary;
        if let Kind::Dedicated { ws, .. } = &mut self.kind {
            ws.set_binary_data(binary);
        }
    }

    /// Is `write` sending binary frames?
    pub fn binary_data(&self) -> bool {
        self.binary_data
    }

    /// Bytes queued but not yet written (dedicated sockets; 0 for shared ones).
    pub fn buffered_amount(&self) -> usize {
        match &self.kind {
            Kind::Dedicated { ws, .. } => ws.buffered_amount(),
            Kind::Shared(_) => 0,
        }
    }

    /// Has the socket closed?
    pub fn is_closed(&self) -> bool {
        match &self.kind {
            Kind::Dedicated { ws, .. } => ws.is_closed(),
            Kind::Shared(h) => h.is_closed(),
        }
    }

    /// IRIS `Read(len, timeout)`: up to `len` characters of the next message (bytes for
    /// binary; the rest comes with the next reads), `Err(Timeout)` if nothing came in time
    /// (the socket stays open), `Err(Closed { .. })` once it is closed. Cancel-safe.
    #[allow(clippy::manual_async_fn)] // an async fn would store its arguments twice
    pub fn read(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Message, Error>> + '_ {
        async move {
            let (ws, mailbox) = match &mut self.kind {
                Kind::Shared(h) => return Box::pin(h.read(len, timeout)).await,
                Kind::Dedicated { ws, mailbox } => (ws, mailbox),
            };
            // The timeout starts when the read first has to wait (no clock read for a
            // message that is already buffered).
            let mut deadline = ws_session::server_support::Deadline::after(timeout);
            loop {
                // Frames other tasks pushed go out first, together in one write. (The
                // registry wakes a socket only after the runtime has polled its other
                // sockets, so what several senders publish at once is already queued here.)
                let meter = self.meter.as_ref();
                if mailbox.has_pending() {
                    match queue_commands(ws, mailbox, &self.registry, self.id, meter)? {
                        Rest::Nothing => {}
                        Rest::Send => ws.send_queued().await?,
                        // Boxed: rare, and its state would enlarge every waiting read.
                        rest => Box::pin(run_rest(ws, mailbox, rest, meter)).await?,
                    }
                }
                // Returns `None` when another task queued something for this socket.
                if let Some(msg) =
                    ws.read_interruptible_until(len, &mut deadline, mailbox.interrupt()).await?
                {
                    if let Some(meter) = meter {
                        meter.received(msg.len(), !ws.message_continues());
                    }
                    return Ok(msg);
                }
            }
        }
    }

    /// `read` with IRIS's defaults: 32656 characters, 86400 s.
    pub async fn read_default(&mut self) -> Result<Message, Error> {
        self.read(DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT).await
    }

    /// The next whole message (or the rest of a partly read one), however long it is,
    /// waiting as long as it takes: `read(0, ..)` with IRIS's one-day timeout.
    /// `Err(Closed { .. })` once the socket is closed (see [`Error::is_normal_close`]).
    pub async fn read_message(&mut self) -> Result<Message, Error> {
        self.read(0, DEFAULT_READ_TIMEOUT).await
    }

    /// IRIS `Write`: one text message, or a binary one when `binary_data` is set.
    pub async fn write(&mut self, data: &str) -> Result<(), Error> {
        if let Some(pending) = self.run_pending() {
            pending.await?;
        }
        match &mut self.kind {
            // The socket's own `binary_data` follows ours (see `set_binary_data`).
            Kind::Dedicated { ws, .. } => counted(ws.write(data).await, &self.meter, data.len()),
            Kind::Shared(h) if self.binary_data => Box::pin(h.write_binary(data.as_bytes())).await,
            Kind::Shared(h) => Box::pin(h.write(data)).await,
        }
    }

    /// One binary message.
    pub async fn write_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(pending) = self.run_pending() {
            pending.await?;
        }
        match &mut self.kind {
            Kind::Dedicated { ws, .. } => counted(ws.write_binary(data).await, &self.meter, data.len()),
            Kind::Shared(h) => Box::pin(h.write_binary(data)).await,
        }
    }

    /// One message of either kind (an echo writes back what it read).
    pub async fn write_message(&mut self, msg: &Message) -> Result<(), Error> {
        if let Some(pending) = self.run_pending() {
            pending.await?;
        }
        match &mut self.kind {
            Kind::Dedicated { ws, .. } => counted(ws.write_message(msg).await, &self.meter, msg.len()),
            Kind::Shared(h) => Box::pin(h.write_message(msg.clone())).await,
        }
    }

    /// Before a write on a dedicated socket: send what other tasks queued for it first.
    /// (A plain check, and a future only when there is something to send: this runs before
    /// every write.)
    fn run_pending(&mut self) -> Option<impl Future<Output = Result<(), Error>> + '_> {
        match &mut self.kind {
            // Boxed: rare before a write, and it would enlarge every write's future.
            Kind::Dedicated { ws, mailbox } if mailbox.has_pending() => {
                Some(Box::pin(run_commands(ws, mailbox, &self.registry, self.id, self.meter.as_ref())))
            }
            _ => None,
        }
    }

    /// IRIS `EndServer`: the closing handshake with 1000, then the TCP close.
    pub async fn end_server(&mut self) -> Result<(), Error> {
        self.close(CloseCode::NORMAL, "").await
    }

    /// Closes with `code` and `reason`.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        match &mut self.kind {
            // Boxed: closing is rare, and its future would enlarge every `server` future.
            Kind::Dedicated { ws, .. } => Box::pin(ws.close(code, reason)).await,
            Kind::Shared(h) => Box::pin(h.close(code, reason)).await,
        }
    }

    /// How a dedicated socket ended (code, reason), once it has.
    pub(crate) fn close_info(&self) -> Option<(CloseCode, String)> {
        match &self.kind {
            Kind::Dedicated { ws, .. } => ws.close_info().map(|(c, r)| (c, r.to_string())),
            Kind::Shared(_) => None,
        }
    }

    /// A dedicated socket's parts (to make it shared).
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_dedicated_parts(
        self,
    ) -> Option<(WebSocketId, Arc<str>, Registry, Box<WebSocket<Transport>>, Arc<Mailbox>)> {
        match self.kind {
            Kind::Dedicated { ws, mailbox } => Some((self.id, self.session_id, self.registry, ws, mailbox)),
            Kind::Shared(_) => None,
        }
    }

    pub(crate) fn mailbox(&self) -> Option<&Arc<Mailbox>> {
        match &self.kind {
            Kind::Dedicated { mailbox, .. } => Some(mailbox),
            Kind::Shared(_) => None,
        }
    }
}

/// Runs what other tasks queued for a dedicated socket (before a write: see `run_pending`).
async fn run_commands(
    ws: &mut WebSocket<Transport>,
    mailbox: &Mailbox,
    registry: &Registry,
    id: WebSocketId,
    meter: Option<&Meter>,
) -> Result<(), Error> {
    match queue_commands(ws, mailbox, registry, id, meter)? {
        Rest::Nothing => Ok(()),
        Rest::Send => ws.send_queued().await,
        rest => run_rest(ws, mailbox, rest, meter).await,
    }
}

/// A write's result, counted when the message was queued.
#[inline]
fn counted(result: Result<(), Error>, meter: &Option<Meter>, bytes: usize) -> Result<(), Error> {
    if let (Ok(()), Some(meter)) = (&result, meter) {
        meter.sent(bytes);
    }
    result
}

/// What is left to do once the pushed frames are queued.
enum Rest {
    Nothing,
    /// Write the frames queued (without waiting for a slow peer).
    Send,
    /// Close a slow consumer; the commands it had left are answered as closed.
    Slow(VecDeque<Command>),
    /// Write and close requests (and the frames after them), in order.
    Requests(VecDeque<Command>),
}

/// Queues what other tasks pushed to a dedicated socket: frames (broadcasts) without
/// allocating or waiting, to be written together with one system call (the socket's read
/// goes on writing them to a slow peer). A socket whose pushed output passes
/// `max_queued_bytes` is a slow consumer. A plain function, so a waiting read's future does
/// not carry the state of the rare paths.
fn queue_commands(
    ws: &mut WebSocket<Transport>,
    mailbox: &Mailbox,
    registry: &Registry,
    id: WebSocketId,
    meter: Option<&Meter>,
) -> Result<Rest, Error> {
    let mut commands = mailbox.take_all();
    if mailbox.is_slow() {
        // Found slow when a frame was pushed (and counted then); its frames are gone.
        return Ok(Rest::Slow(commands));
    }
    let mut queued = false;
    while let Some(cmd) = commands.pop_front() {
        match cmd {
            Command::Frame(frame) => match queue_pushed(ws, mailbox, &frame)? {
                Pushed::Queued => {
                    if let Some(meter) = meter {
                        meter.pushed(&frame);
                    }
                    queued = true
                }
                Pushed::Slow { first } => {
                    if first {
                        registry.slow_consumer(&id, mailbox.max_bytes());
                    }
                    return Ok(Rest::Slow(commands));
                }
            },
            other => {
                commands.push_front(other);
                return Ok(Rest::Requests(commands));
            }
        }
    }
    Ok(if queued { Rest::Send } else { Rest::Nothing })
}

/// The rare rest of [`queue_commands`]'s work.
async fn run_rest(
    ws: &mut WebSocket<Transport>,
    mailbox: &Mailbox,
    rest: Rest,
    meter: Option<&Meter>,
) -> Result<(), Error> {
    match rest {
        Rest::Nothing => Ok(()),
        Rest::Send => ws.send_queued().await,
        Rest::Slow(commands) => {
            let (code, reason) = close_slow(ws, mailbox, commands).await;
            Err(Error::Closed { code, reason })
        }
        Rest::Requests(commands) => run_requests(ws, commands, meter).await,
    }
}

/// The write and close requests (and any frames after them), in order.
async fn run_requests(
    ws: &mut WebSocket<Transport>,
    commands: VecDeque<Command>,
    meter: Option<&Meter>,
) -> Result<(), Error> {
    for cmd in commands {
        match cmd {
            Command::Frame(frame) => {
                crate::frame::queue_frame(ws, &frame)?;
                ws.send_queued().await?;
                if let Some(meter) = meter {
                    meter.pushed(&frame);
                }
            }
            Command::Write { msg, reply } => {
                let result = ws.write_message(&msg).await;
                if let (Ok(()), Some(meter)) = (&result, meter) {
                    meter.sent(msg.len());
                }
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    return Err(closed(ws));
                }
            }
            Command::Read { reply, .. } => {
                let _ = reply.send(Err(Error::InvalidInput("the socket is not shared".into())));
            }
            Command::Close { code, reason, reply } => {
                let _ = ws.close(code, &reason).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return Err(closed(ws));
            }
        }
    }
    Ok(())
}

fn closed(ws: &WebSocket<Transport>) -> Error {
    let (code, reason) = ws.close_info().unwrap_or((CloseCode::ABNORMAL, ""));
    Error::Closed { code, reason: reason.to_string() }
}
