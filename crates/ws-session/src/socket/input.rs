//! Reading: filling the read buffer (writing queued output meanwhile, and not reading while
//! the output is over its bound), the step loop, timers, and how a connection ends.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use ws_proto::Event;

use super::{MIN_READ, Slow, Step, WebSocket};
use crate::server_support::Deadline;
use crate::{Error, Message, pool};

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Reads more bytes into the read buffer, writing queued output meanwhile.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
    pub(super) fn next_message(
        &mut self,
        mut deadline: Deadline,
    ) -> impl Future<Output = Result<Message, Error>> + '_ {
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
    pub(super) fn poll_step(
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
            let wake = self.next_timer(deadline.instant());
            return self.poll_timer_until(cx, wake).map(|()| Step::Slow(Slow::Timer));
        }
    }

    pub(super) fn next_timer(&self, deadline: Instant) -> Instant {
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
}
