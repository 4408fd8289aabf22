//! `futures`' `Stream` and `Sink` on a [`WebSocket`], for code written against them (forward
//! a socket into another with `forward`, `split` it between two tasks, combinators).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::CloseCode;

use super::{Step, WebSocket};
use crate::server_support::Deadline;
use crate::{DEFAULT_READ_TIMEOUT, Error, Message};

/// Whole messages, as [`read_message`](WebSocket::read_message) returns them. The stream ends
/// (`None`) after a normal close from either side (see [`Error::is_normal_close`]); any other
/// end is one last `Err`. Pings are answered and timers run while it is polled.
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(rest) = this.partial.take() {
            return Poll::Ready(Some(Ok(*rest)));
        }
        if this.stream_ended {
            return Poll::Ready(None);
        }
        let mut deadline = Deadline::after(DEFAULT_READ_TIMEOUT);
        loop {
            let slow = match this.poll_step(cx, &mut deadline, None) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Step::Message(msg)) => return Poll::Ready(Some(Ok(msg))),
                Poll::Ready(Step::Interrupted) => continue, // not reached: no interrupt
                Poll::Ready(Step::Slow(slow)) => slow,
            };
            let at = deadline.instant();
            match this.poll_slow(cx, slow, at) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(Error::Timeout)) => continue, // a day without a message: wait on
                Poll::Ready(Err(e)) => {
                    this.stream_ended = true;
                    return Poll::Ready(if e.is_normal_close() { None } else { Some(Err(e)) });
                }
            }
        }
    }
}

/// Messages to send: `start_send` queues one (text or binary as it is, whatever
/// `binary_data` says), `poll_ready` waits while more than `max_write_buffer` bytes are
/// queued, `poll_flush` writes them all, and `poll_close` queues a Close (1000) and flushes
/// it; the closing handshake completes as the `Stream` side reads the peer's answer.
impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let bound = this.config.max_write_buffer;
        this.poll_written(cx, bound)
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        let this = self.get_mut();
        this.queue_message(&msg).map_err(|e| this.send_error(e))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_written(cx, 0)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.ended.is_none() && !this.conn.close_sent() {
            let _ = this.conn.close(Some((CloseCode::NORMAL, "")));
        }
        match this.poll_written(cx, 0) {
            Poll::Ready(Err(e)) if this.ended.is_some() && e.is_closed() => Poll::Ready(Ok(())),
            other => other,
        }
    }
}
