//! How other tasks reach a socket: a small locked queue plus an [`Interrupt`] that wakes the
//! socket's read. It allocates nothing until something is sent, so an idle socket pays a few
//! dozen bytes for it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use ws_session::Interrupt;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use ws_proto::CloseCode;
use ws_session::{Error, Message};

/// Most frames a socket queues from others before further pushes to it are refused (a slow
/// consumer must not make the server's memory grow).
pub(crate) const MAILBOX_CAPACITY: usize = 4096;

/// Something another task asks of a socket.
pub(crate) enum Command {
    /// Frames encoded once and shared by many sockets (broadcast, publish).
    Frame(Bytes),
    /// One message, with an acknowledgement once queued on the socket (or an error).
    Write { msg: Message, reply: oneshot::Sender<Result<(), Error>> },
    /// Read for a handle of a shared socket (the socket's own task answers).
    Read { len: usize, deadline: Instant, reply: oneshot::Sender<Result<Message, Error>> },
    /// Close with this code and reason; the reply comes once closed.
    Close { code: CloseCode, reason: String, reply: Option<oneshot::Sender<()>> },
}

/// The queue of commands for one socket.
#[derive(Default)]
pub(crate) struct Mailbox {
    queue: Mutex<VecDeque<Command>>,
    /// Raised when something is queued: the socket's hot path checks an atomic, not a lock.
    interrupt: Interrupt,
    closed: AtomicBool,
}

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

impl Mailbox {
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
        if q.len() >= MAILBOX_CAPACITY && matches!(cmd, Command::Frame(_)) {
            return Err((PushError::Full, cmd));
        }
        q.push_back(cmd);
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
        std::mem::take(&mut *q)
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
