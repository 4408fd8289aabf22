//! Shared sockets: one task drives the socket; handles from `open_server` reach it through
//! its mailbox. Input is read as it arrives (so pings are answered and the peer's Close is
//! seen even when nobody reads) into a bounded inbox that handles `read` from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use ws_proto::CloseCode;
use ws_session::Transport;
use ws_session::{DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT, Error, Message, WebSocket};

use crate::mailbox::{Command, Mailbox, Pushed, close_slow, queue_pushed, refuse_all};
use crate::metrics::Meter;
use crate::{Registry, RemoteSocket, WebSocketId};

/// Messages a shared socket keeps for its readers before it stops reading (TCP backpressure
/// then slows the peer).
const INBOX_CAPACITY: usize = 256;

/// State every handle of one shared socket can see.
#[derive(Default)]
pub(crate) struct SharedState {
    ended: Mutex<Option<(CloseCode, String)>>,
}

impl SharedState {
    fn closed_error(&self) -> Error {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (code, reason) = ended.unwrap_or((CloseCode::ABNORMAL, String::new()));
        Error::Closed { code, reason }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub(crate) fn ended(&self) -> Option<(CloseCode, String)> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A handle to a shared socket (IRIS `OpenServer`), usable from any task and cheap to clone.
/// Reads, writes and closes go to the socket's own task, on this node or (through a cluster)
/// another.
#[derive(Clone)]
pub struct SharedHandle {
    id: WebSocketId,
    inner: Target,
}

#[derive(Clone)]
enum Target {
    Local { mailbox: Arc<Mailbox>, state: Arc<SharedState> },
    Remote(Arc<dyn RemoteSocket>),
}

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remote = matches!(self.inner, Target::Remote(_));
        f.debug_struct("SharedHandle").field("id", &self.id).field("remote", &remote).finish()
    }
}

impl SharedHandle {
    pub(crate) fn local(id: WebSocketId, mailbox: Arc<Mailbox>, state: Arc<SharedState>) -> Self {
        SharedHandle { id, inner: Target::Local { mailbox, state } }
    }

    /// A handle to a socket held by another node (for cluster backends).
    pub fn remote(id: WebSocketId, socket: Arc<dyn RemoteSocket>) -> Self {
        SharedHandle { id, inner: Target::Remote(socket) }
    }

    /// The socket's WebSocketID.
    pub fn web_socket_id(&self) -> WebSocketId {
        self.id
    }

    /// Is the socket held by another node?
    pub fn is_remote(&self) -> bool {
        matches!(self.inner, Target::Remote(_))
    }

    /// Has the socket closed? (Known for local sockets; a remote one says so on the next
    /// call.)
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Target::Local { state, .. } => state.is_done(),
            Target::Remote(_) => false,
        }
    }

    /// IRIS `Read(len, timeout)` on the shared socket: the next message (or the rest of one)
    /// received since the last read, up to `len` characters; `Timeout` or `Closed` as for a
    /// dedicated socket. Cancel-safe: a dropped read loses no message.
    pub async fn read(&self, len: usize, timeout: Duration) -> Result<Message, Error> {
        let (mailbox, state) = match &self.inner {
            Target::Remote(r) => return r.read(len, timeout).await,
            Target::Local { mailbox, state } => (mailbox, state),
        };
        let (reply, answer) = oneshot::channel();
        // Fixed now: the socket's task keeps it while other readers wait too.
        let deadline = ws_session::server_support::Deadline::after(timeout).instant();
        mailbox.push(Command::Read { len, deadline, reply }).map_err(|_| state.closed_error())?;
        answer.await.unwrap_or_else(|_| Err(state.closed_error()))
    }

    /// `read` with IRIS's defaults (32656 characters, 86400 s).
    pub async fn read_default(&self) -> Result<Message, Error> {
        self.read(DEFAULT_READ_LEN, DEFAULT_READ_TIMEOUT).await
    }

    /// Sends a text message.
    pub async fn write(&self, text: &str) -> Result<(), Error> {
        self.write_message(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    pub async fn write_binary(&self, data: &[u8]) -> Result<(), Error> {
        self.write_message(Message::Binary(bytes::Bytes::copy_from_slice(data))).await
    }

    /// Sends a message; returns once the socket's task has queued it.
    pub async fn write_message(&self, msg: Message) -> Result<(), Error> {
        let (mailbox, state) = match &self.inner {
            Target::Remote(r) => return r.write_message(msg).await,
            Target::Local { mailbox, state } => (mailbox, state),
        };
        let (reply, answer) = oneshot::channel();
        mailbox.push(Command::Write { msg, reply }).map_err(|_| state.closed_error())?;
        answer.await.unwrap_or_else(|_| Err(state.closed_error()))
    }

    /// IRIS `EndServer`: closes the socket with 1000 and waits until it is closed.
    pub async fn end_server(&self) -> Result<(), Error> {
        self.close(CloseCode::NORMAL, "").await
    }

    /// Closes the socket with `code` and `reason` and waits until it is closed.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_valid_on_wire() {
            return Err(Error::InvalidInput(format!("close code {code} may not be sent")));
        }
        let mailbox = match &self.inner {
            Target::Remote(r) => return r.close(code, reason).await,
            Target::Local { mailbox, .. } => mailbox,
        };
        let (reply, answer) = oneshot::channel();
        if mailbox.push(Command::Close { code, reason: reason.into(), reply: Some(reply) }).is_err() {
            return Ok(()); // already closed
        }
        let _ = answer.await;
        Ok(())
    }
}

/// A reader waiting for input.
struct Waiting {
    len: usize,
    deadline: Instant,
    reply: oneshot::Sender<Result<Message, Error>>,
}

/// Drives a shared socket until it closes: reads input into the inbox, serves readers, runs
/// commands, and closes the socket after `session_timeout` without traffic either way.
/// Counts its messages in `meter`.
pub(crate) async fn run(
    mut ws: WebSocket<Transport>,
    mailbox: Arc<Mailbox>,
    state: Arc<SharedState>,
    session_timeout: Duration,
    registry: Registry,
    id: WebSocketId,
    meter: Option<&Meter>,
) {
    let mut inbox: VecDeque<Message> = VecDeque::new();
    let mut readers: VecDeque<Waiting> = VecDeque::new();
    let mut last_activity = Instant::now();
    let ended: (CloseCode, String) = 'life: loop {
        serve_readers(&mut inbox, &mut readers);
        let now = Instant::now();
        // Readers whose time is up get Timeout; the socket stays open.
        readers.retain_mut(|w| {
            if w.deadline <= now {
                let (reply, _) = oneshot::channel();
                let _ = std::mem::replace(&mut w.reply, reply).send(Err(Error::Timeout));
                false
            } else {
                true
            }
        });
        let idle_at = last_activity + session_timeout;
        let wake = readers.iter().map(|w| w.deadline).min().map_or(idle_at, |d| d.min(idle_at));
        if now >= idle_at {
            tracing::info!("shared socket idle for the session timeout: closing");
            let _ = ws.close(CloseCode::GOING_AWAY, "session timeout").await;
            break (CloseCode::GOING_AWAY, "session timeout".into());
        }
        let room = inbox.len() < INBOX_CAPACITY;
        tokio::select! {
            biased;
            _ = mailbox.notified() => {
                last_activity = Instant::now();
                let mut queued = false;
                let mut commands = mailbox.take_all();
                if mailbox.is_slow() {
                    break 'life Box::pin(close_slow(&mut ws, &mailbox, commands)).await;
                }
                while let Some(cmd) = commands.pop_front() {
                    match cmd {
                        Command::Frame(frame) => match queue_pushed(&mut ws, &mailbox, &frame) {
                            Ok(Pushed::Queued) => {
                                if let Some(meter) = meter {
                                    meter.pushed(&frame);
                                }
                                queued = true
                            }
                            Ok(Pushed::Slow { first }) => {
                                if first {
                                    registry.slow_consumer(&id, mailbox.max_bytes());
                                }
                                break 'life Box::pin(close_slow(&mut ws, &mailbox, commands)).await;
                            }
                            Err(e) => break 'life closed_by(&e),
                        },
                        Command::Write { msg, reply } => {
                            let result = ws.write_message(&msg).await;
                            if let (Ok(()), Some(meter)) = (&result, meter) {
                                meter.sent(msg.len());
                            }
                            let failed = result.as_ref().err().map(closed_by);
                            let _ = reply.send(result);
                            if let Some(ended) = failed {
                                break 'life ended;
                            }
                        }
                        Command::Read { len, deadline, reply } => readers.push_back(Waiting { len, deadline, reply }),
                        Command::Close { code, reason, reply } => {
                            let _ = ws.close(code, &reason).await;
                            if let Some(reply) = reply {
                                let _ = reply.send(());
                            }
                            break 'life (code, reason);
                        }
                    }
                }
                if queued && let Err(e) = ws.send_queued().await {
                    break 'life closed_by(&e);
                }
            }
            read = ws.read(0, wake.saturating_duration_since(now)), if room => match read {
                Ok(msg) => {
                    last_activity = Instant::now();
                    if let Some(meter) = meter {
                        meter.received(msg.len(), true);
                    }
                    inbox.push_back(msg);
                }
                Err(Error::Timeout) => {}
                Err(e) => break closed_by(&e),
            },
            _ = tokio::time::sleep_until(wake), if !room => {}
        }
    };
    // Record the end before answering anyone, so every later call sees Closed.
    *state.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(ended.clone());
    let (code, reason) = ended;
    for w in readers {
        let _ = w.reply.send(Err(Error::Closed { code, reason: reason.clone() }));
    }
    refuse_all(mailbox.close(), code, &reason);
}

fn closed_by(e: &Error) -> (CloseCode, String) {
    match e {
        Error::Closed { code, reason } => (*code, reason.clone()),
        other => (other.close_code().unwrap_or(CloseCode::ABNORMAL), String::new()),
    }
}

/// Hands inbox messages to waiting readers in order, cutting each to the reader's `len`. A
/// reader that went away (its read was cancelled) gets nothing and loses nothing.
fn serve_readers(inbox: &mut VecDeque<Message>, readers: &mut VecDeque<Waiting>) {
    while !inbox.is_empty() {
        let Some(w) = readers.pop_front() else { return };
        if w.reply.is_closed() {
            continue;
        }
        let msg = inbox.pop_front().unwrap_or(Message::Binary(bytes::Bytes::new()));
        let (first, rest) = if w.len == 0 { (msg, None) } else { msg.split_first(w.len) };
        match w.reply.send(Ok(first)) {
            Ok(()) => {
                if let Some(rest) = rest {
                    inbox.push_front(rest);
                }
            }
            Err(Ok(first)) => {
                // The reader vanished between the check and the send: put it all back.
                let whole = match rest {
                    None => first,
                    Some(rest) => join(first, rest),
                };
                inbox.push_front(whole);
            }
            Err(Err(_)) => {}
        }
    }
}

fn join(first: Message, rest: Message) -> Message {
    match (first, rest) {
        (Message::Text(a), Message::Text(b)) => Message::Text(format!("{a}{b}").into()),
        (a, b) => Message::Binary([a.as_bytes(), b.as_bytes()].concat().into()),
    }
}
