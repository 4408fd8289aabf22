//! How a connection ends: the peer's Close, a protocol failure, a dead transport or a timer,
//! then closing the transport (flush, FIN, linger). All of it is poll functions over state
//! kept in the socket, so a dropped read or close loses nothing, and a `Stream` can drive it.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use ws_proto::{CloseCode, Role};

use super::{Ended, Slow, WebSocket};
use crate::Error;

/// Closing the transport, once begun (see [`WebSocket::poll_finish`]).
pub(super) struct Finishing {
    phase: Phase,
    /// When the current phase gives up: `close_timeout` after the start for the first
    /// three phases, `linger_timeout` after it began for `Linger`.
    deadline: Instant,
    /// What the read that began it returns once the transport is closed.
    outcome: Option<Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Write what is queued (the Close frame last).
    Flush,
    /// A client waits for the server's FIN (the server closes TCP first, section 7.1.1).
    Drain,
    /// Send our FIN.
    Shutdown,
    /// A server reads (and discards) until the client's FIN, so unread input does not turn
    /// the close into a reset that could destroy the Close frame in flight.
    Linger,
    Done,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The rare outcomes of a step, run by [`poll_slow`](WebSocket::poll_slow) in a boxed
    /// future (it does not enlarge a waiting read's). `Ok` means "read on".
    pub(super) async fn slow_step(&mut self, slow: Slow, deadline: Instant) -> Result<(), Error> {
        let mut slow = Some(slow);
        poll_fn(|cx| self.poll_slow(cx, slow.take().unwrap_or(Slow::Ended), deadline)).await
    }

    /// One rare outcome: the peer's Close and protocol failures begin closing the
    /// transport, a timer may (idle, keepalive) or may drop the peer (write timeout). A
    /// call that returns `Pending` is continued by the next with [`Slow::Ended`].
    pub(super) fn poll_slow(
        &mut self,
        cx: &mut Context<'_>,
        slow: Slow,
        deadline: Instant,
    ) -> Poll<Result<(), Error>> {
        match slow {
            Slow::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (f.code, f.reason),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                tracing::debug!(%code, %reason, "peer closed");
                let outcome = Error::Closed { code, reason: reason.clone() };
                self.ended = Some(Box::new(Ended { code, reason }));
                self.begin_finish(outcome);
            }
            Slow::Failure(error) => {
                let code = error.close_code();
                tracing::debug!(%error, "failing the connection");
                self.ended = Some(Box::new(Ended { code, reason: error.reason().into() }));
                self.begin_finish(Error::Protocol { error, code });
            }
            Slow::Died(e) => return Poll::Ready(Err(self.died(e))),
            Slow::Ended => {}
            Slow::Timer => {
                if let Err(e) = self.on_timer(deadline)
                    && self.finishing.is_none()
                {
                    return Poll::Ready(Err(e));
                }
                if self.ended.is_none() {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        self.poll_finish(cx).map(|outcome| Err(outcome.unwrap_or_else(|| self.ended_error())))
    }

    /// The error every call gets once the connection is over.
    pub(super) fn ended_error(&self) -> Error {
        self.ended
            .as_ref()
            .map(|e| e.error())
            .unwrap_or(Error::Closed { code: CloseCode::ABNORMAL, reason: String::new() })
    }

    /// The transport died: no Close frame will come (code 1006).
    pub(super) fn died(&mut self, e: io::Error) -> Error {
        let eof = e.kind() == io::ErrorKind::UnexpectedEof;
        if self.ended.is_none() {
            self.ended = Some(Box::new(Ended { code: CloseCode::ABNORMAL, reason: String::new() }));
        }
        self.finished();
        if eof { Error::Closed { code: CloseCode::ABNORMAL, reason: String::new() } } else { Error::Io(e) }
    }

    /// The socket's timers: the write timeout drops the peer, idle and keepalive timeouts
    /// close (the caller then finishes the transport), a keepalive Ping is sent; `Timeout`
    /// once the read's own deadline has passed.
    fn on_timer(&mut self, deadline: Instant) -> Result<(), Error> {
        let now = Instant::now();
        if let (Some(timeout), Some(since)) = (self.config.write_timeout, self.write_stalled)
            && now >= since + timeout
        {
            return Err(self.write_timed_out());
        }
        if let Some(idle) = self.config.idle_timeout
            && now >= self.last_rx + idle
        {
            return Err(self.give_up(CloseCode::GOING_AWAY, "idle timeout"));
        }
        if let Some(interval) = self.config.keepalive_interval {
            match self.ping_sent {
                Some(at) if now >= at + self.config.keepalive_timeout => {
                    return Err(self.give_up(CloseCode::GOING_AWAY, "keepalive timeout"));
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
    fn give_up(&mut self, code: CloseCode, reason: &str) -> Error {
        tracing::debug!(%code, reason, "closing");
        let _ = self.conn.close(Some((code, reason)));
        self.ended = Some(Box::new(Ended { code, reason: reason.into() }));
        self.begin_finish(Error::Closed { code, reason: reason.into() });
        Error::Closed { code, reason: reason.into() }
    }

    /// Starts closing the transport (once): `outcome` is what the read that began it
    /// returns when it is done.
    pub(super) fn begin_finish(&mut self, outcome: Error) {
        if self.finishing.is_none() {
            let deadline = Instant::now() + self.config.close_timeout;
            self.finishing =
                Some(Box::new(Finishing { phase: Phase::Flush, deadline, outcome: Some(outcome) }));
        }
    }

    /// The transport is closed (or given up): nothing more to do but free the buffers.
    pub(super) fn finished(&mut self) {
        self.finishing =
            Some(Box::new(Finishing { phase: Phase::Done, deadline: Instant::now(), outcome: None }));
        self.release_buffers();
    }

    /// After the closing handshake or a failure: flush, then close TCP. A server closes
    /// first and then lingers until the client's FIN (bounded by `linger_timeout`); a client
    /// waits for the server's FIN first. Flushing, draining and the FIN together are bounded
    /// by `close_timeout`. Returns the outcome `begin_finish` was given, once.
    pub(super) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let server = self.conn.role() == Role::Server;
        loop {
            let Some(finishing) = self.finishing.as_deref() else { return Poll::Ready(None) };
            let (phase, deadline) = (finishing.phase, finishing.deadline);
            // Where to go when the close window passes or the transport fails.
            let given_up = if server { Phase::Linger } else { Phase::Done };
            let progress = match phase {
                Phase::Flush => match self.poll_write_out(cx, 0) {
                    Poll::Ready(Ok(())) if server => Poll::Ready(Phase::Shutdown),
                    Poll::Ready(Ok(())) => Poll::Ready(Phase::Drain),
                    Poll::Ready(Err(_)) => Poll::Ready(given_up),
                    Poll::Pending => Poll::Pending,
                },
                Phase::Drain => match self.poll_discard(cx) {
                    Poll::Ready(()) => Poll::Ready(Phase::Shutdown),
                    Poll::Pending => Poll::Pending,
                },
                Phase::Shutdown => match Pin::new(&mut self.stream).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(given_up),
                    Poll::Pending => Poll::Pending,
                },
                Phase::Linger => match self.poll_discard(cx) {
                    Poll::Ready(()) => Poll::Ready(Phase::Done),
                    Poll::Pending => Poll::Pending,
                },
                Phase::Done => {
                    self.release_buffers();
                    return Poll::Ready(self.finishing.as_mut().and_then(|f| f.outcome.take()));
                }
            };
            let next = match progress {
                Poll::Ready(next) => next,
                Poll::Pending => match self.poll_timer_until(cx, deadline) {
                    Poll::Ready(()) if phase == Phase::Linger => Phase::Done,
                    Poll::Ready(()) => given_up,
                    Poll::Pending => return Poll::Pending,
                },
            };
            if let Some(finishing) = self.finishing.as_deref_mut() {
                if next == Phase::Linger && phase != Phase::Linger {
                    finishing.deadline = Instant::now() + self.config.linger_timeout;
                }
                finishing.phase = next;
            }
        }
    }

    /// Reads and discards until the peer's FIN (or an error).
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.rbuf.clear();
            match self.poll_fill(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits until `at` on the socket's one timer: created on first use, moved earlier only
    /// when needed; when it fires before `at` (armed for an earlier wait) it moves to `at`.
    pub(super) fn poll_timer_until(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() > at {
                    timer.as_mut().reset(at);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() < at => timer.as_mut().reset(at),
                Poll::Ready(()) => return Poll::Ready(()),
            }
        }
    }

    pub(super) fn release_buffers(&mut self) {
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
