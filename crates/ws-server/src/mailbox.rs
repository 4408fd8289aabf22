//! How other tasks reach a socket: a small locked queue plus an [`Interrupt`] that wakes the
//! socket's read. It allocates nothing until something is sent, so an idle socket pays a few
//! dozen bytes for it. Pushed frames are bounded in bytes: a socket that lets more than
//! `max_queued_bytes` pile up is a slow consumer, and is closed (see
//! [`ServerConfig::max_queued_bytes`](crate::ServerConfig::max_queued_bytes)).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use ws_session::server_support::Interrupt;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use ws_proto::CloseCode;
use ws_session::{Error, Message, WebSocket};

use crate::frame::{PushedFrame, queue_frame};

/// Something another task asks of a socket.
pub(crate) enum Command {
    /// Frames encoded once and shared by many sockets (broadcast, publish).
    Frame(PushedFrame),
    /// One message, with an acknowledgement once queued on the socket (or an error).
    Write { msg: Message, reply: oneshot::Sender<Result<(), Error>> },
    /// Read for a handle of a shared socket (the socket's own task answers).
    Read { len: usize, deadline: Instant, reply: oneshot::Sender<Result<Message, Error>> },
    /// Close with this code and reason; the reply comes once closed.
    Close { code: CloseCode, reason: String, reply: Option<oneshot::Sender<()>> },
}

/// The queue of commands for one socket.
pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    /// Raised when something is queued: the socket's hot path checks an atomic, not a lock.
    interrupt: Interrupt,
    closed: AtomicBool,
    /// Set once the socket is found to be a slow consumer; it is then being closed.
    slow: AtomicBool,
    /// Most bytes of pushed frames queued here (and in the socket's output).
    max_bytes: usize,
    /// The close code a slow consumer gets.
    slow_code: CloseCode,
}

#[derive(Default)]
struct Queue {
    commands: VecDeque<Command>,
    /// Bytes of the `Frame`s in `commands`.
    frame_bytes: usize,
}

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// This push found the socket a slow consumer: its queued frames were freed, and the
    /// socket closes when it next runs. Reported once per socket.
    SlowConsumer,
    /// The socket is already closing as a slow consumer: the frame is dropped.
    Dropped,
    /// The socket is gone.
    Closed,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox::new(usize::MAX, CloseCode::POLICY)
    }
}

impl Mailbox {
    /// A mailbox that holds at most `max_bytes` of pushed frames (one frame is always taken
    /// into an empty queue, however large); a slow consumer is closed with `slow_code`.
    pub(crate) fn new(max_bytes: usize, slow_code: CloseCode) -> Self {
        Mailbox {
            queue: Mutex::default(),
            interrupt: Interrupt::new(),
            closed: AtomicBool::new(false),
            slow: AtomicBool::new(false),
            max_bytes,
            slow_code,
        }
    }

    /// The bound on pushed bytes (see [`Mailbox::new`]).
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Marks the socket a slow consumer; true the first time (so it is counted and logged
    /// once).
    pub(crate) fn mark_slow(&self) -> bool {
        !self.slow.swap(true, Ordering::AcqRel)
    }

    /// Was the socket found to be a slow consumer?
    pub(crate) fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    pub(crate) fn push(&self, cmd: Command) -> Result<(), (PushError, Command)> {
        self.enqueue(cmd)?;
        self.interrupt.raise();
        Ok(())
    }

    /// Queues `cmd` and raises the interrupt, but leaves waking the socket's task to the
    /// caller: returns the waker of a task waiting on it.
    pub(crate) fn push_deferred(&self, cmd: Command) -> Result<Option<Waker>, (PushError, Command)> {
        self.enqueue(cmd)?;
        Ok(self.interrupt.raise_deferred())
    }

    fn enqueue(&self, cmd: Command) -> Result<(), (PushError, Command)> {
        if self.closed.load(Ordering::Acquire) {
            return Err((PushError::Closed, cmd));
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Command::Frame(frame) = &cmd {
            if self.is_slow() {
                return Err((PushError::Dropped, cmd));
            }
            if q.frame_bytes > 0 && q.frame_bytes + frame.len() > self.max_bytes {
                // A slow consumer: free what it has not taken, and have it close.
                q.commands.retain(|c| !matches!(c, Command::Frame(_)));
                q.frame_bytes = 0;
                drop(q);
                let first = self.mark_slow();
                self.interrupt.raise();
                return Err((if first { PushError::SlowConsumer } else { PushError::Dropped }, cmd));
            }
            q.frame_bytes += frame.len();
        }
        q.commands.push_back(cmd);
        Ok(())
    }

    /// Is anything waiting? (cheap)
    pub(crate) fn has_pending(&self) -> bool {
        self.interrupt.is_raised()
    }

    /// What the socket's read watches.
    pub(crate) fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Takes everything queued.
    pub(crate) fn take_all(&self) -> VecDeque<Command> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.interrupt.clear();
        q.frame_bytes = 0;
        std::mem::take(&mut q.commands)
    }

    /// Waits until something may have been queued.
    pub(crate) async fn notified(&self) {
        self.interrupt.wait().await
    }

    /// Refuses further commands and returns what was still queued.
    pub(crate) fn close(&self) -> VecDeque<Command> {
        self.closed.store(true, Ordering::Release);
        self.take_all()
    }
}

/// Answers the commands of a socket that is gone.
pub(crate) fn refuse_all(commands: VecDeque<Command>, code: CloseCode, reason: &str) {
    for cmd in commands {
        let closed = || Error::Closed { code, reason: reason.to_string() };
        match cmd {
            Command::Frame(_) => {}
            Command::Write { reply, .. } => {
                let _ = reply.send(Err(closed()));
            }
            Command::Read { reply, .. } => {
                let _ = reply.send(Err(closed()));
            }
            Command::Close { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
        }
    }
}

/// The reason a slow consumer's Close frame carries.
pub(crate) const SLOW_CONSUMER: &str = "slow consumer";

/// What became of a pushed frame.
pub(crate) enum Pushed {
    Queued,
    /// The socket is a slow consumer and must close; `first` when this call found it so (it
    /// is counted and logged then).
    Slow {
        first: bool,
    },
}

/// Queues a pushed frame on the socket, unless the socket's unwritten output would then pass
/// the mailbox's bound (a slow consumer). One frame is always taken when nothing waits,
/// however large.
pub(crate) fn queue_pushed<S>(
    ws: &mut WebSocket<S>,
    mailbox: &Mailbox,
    frame: &PushedFrame,
) -> Result<Pushed, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let waiting = ws.buffered_amount();
    if mailbox.is_slow() || (waiting > 0 && waiting + frame.len() > mailbox.max_bytes) {
        return Ok(Pushed::Slow { first: mailbox.mark_slow() });
    }
    queue_frame(ws, frame)?;
    Ok(Pushed::Queued)
}

/// Closes a slow consumer with the mailbox's code and "slow consumer"; the commands that were
/// still to run are answered as closed. Returns how the socket ended.
pub(crate) async fn close_slow<S>(
    ws: &mut WebSocket<S>,
    mailbox: &Mailbox,
    rest: VecDeque<Command>,
) -> (CloseCode, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let code = mailbox.slow_code;
    refuse_all(rest, code, SLOW_CONSUMER);
    let _ = ws.close(code, SLOW_CONSUMER).await;
    (code, SLOW_CONSUMER.to_string())
}
