//! The output queue: frames queued ahead of the proto's buffer (heads and shared payloads),
//! written together with one vectored write, bounded by `max_write_buffer`, and given up
//! after `write_timeout` without progress.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use ws_proto::{CloseCode, SendError};

use super::{COALESCE_MAX, Ended, SHARE_PAYLOAD_MIN, WebSocket};
use crate::Error;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Queues `payload` as it is (not copied) after everything queued so far.
    pub(super) fn queue_shared(&mut self, payload: Bytes) {
        let queued = self.conn.take_output().freeze();
        self.push_segment(queued);
        self.push_segment(payload);
    }

    pub(super) fn push_segment(&mut self, bytes: Bytes) {
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
        self.queue_encoded_inner(frames).map_err(|_| self.closing_error())
    }

    /// Why nothing more can be queued: how the socket ended, or that it is closing.
    fn closing_error(&self) -> Error {
        self.ended
            .as_ref()
            .map(|e| e.error())
            .unwrap_or(Error::Closed { code: CloseCode::NORMAL, reason: "closing".into() })
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

    /// Queues a frame from [`ws_proto::encode_compressed_frame`] made with `window_bits`,
    /// shared by many sockets (a broadcast compressed once). `Ok(false)`: this socket cannot
    /// take it (no permessage-deflate, or a smaller window agreed): send the plain frame.
    pub fn queue_compressed(&mut self, frame: &Bytes, window_bits: u8) -> Result<bool, Error> {
        self.output_from_pool();
        match self.conn.check_send_compressed(window_bits) {
            Ok(()) => {}
            Err(SendError::Compression) => return Ok(false),
            Err(_) => return self.queue_encoded(frame).map(|()| true),
        }
        if frame.len() >= SHARE_PAYLOAD_MIN {
            self.queue_shared(frame.clone());
            Ok(true)
        } else {
            self.queue_encoded(frame).map(|()| true)
        }
    }

    /// Queues one whole message given as its kind and payload, compressed for this socket when
    /// permessage-deflate was agreed (what a socket that keeps its own compression context
    /// does with a broadcast), plain otherwise.
    pub fn queue_payload(&mut self, kind: ws_proto::MessageKind, payload: &[u8]) -> Result<(), Error> {
        self.output_from_pool();
        self.conn.send_fragment(kind, payload, true).map_err(|_| self.closing_error())
    }

    pub(super) fn queue_encoded_inner(&mut self, frames: &Bytes) -> Result<(), SendError> {
        self.output_from_pool();
        if frames.len() >= SHARE_PAYLOAD_MIN {
            self.conn.check_send_encoded().map(|()| self.queue_shared(frames.clone()))
        } else {
            self.conn.send_encoded(frames)
        }
    }

    /// Queued a frame (or failed to): write what can be written now without waiting, then
    /// wait only if the buffer is over its bound.
    pub(super) async fn after_send(&mut self, sent: Result<(), SendError>) -> Result<(), Error> {
        if let Err(e) = sent {
            return Err(self.send_error(e));
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

    /// What a refused send means to the caller.
    pub(super) fn send_error(&self, e: SendError) -> Error {
        match e {
            SendError::Closed => match &self.ended {
                Some(ended) => ended.error(),
                None => Error::Closed { code: CloseCode::NORMAL, reason: "closing".into() },
            },
            SendError::ControlFrameTooLong => Error::InvalidInput("control payload over 125 bytes".into()),
            SendError::FragmentOrder => Error::InvalidInput("frame sent out of order".into()),
            SendError::InvalidCloseCode(c) => Error::InvalidInput(format!("close code {c}")),
            other => Error::InvalidInput(other.to_string()),
        }
    }

    /// Writes until at most `limit` bytes remain queued, or the write timeout gives the peer
    /// up (a poll function: [`wait_written`](WebSocket::wait_written) and the `Sink` use it).
    pub(super) fn poll_written(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<Result<(), Error>> {
        if let Some(ended) = &self.ended
            && self.buffered_amount() > 0
        {
            return Poll::Ready(Err(ended.error()));
        }
        let written = match self.poll_write_out(cx, limit) {
            Poll::Pending => self.poll_write_timer(cx),
            done => done,
        };
        written.map(|result| match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(self.write_timed_out()),
            Err(e) => Err(self.died(e)),
        })
    }

    /// Waits until at most `limit` bytes remain queued.
    pub(super) async fn wait_written(&mut self, limit: usize) -> Result<(), Error> {
        poll_fn(|cx| self.poll_written(cx, limit)).await
    }

    /// While a write waits: `TimedOut` once the peer has accepted nothing for
    /// `write_timeout` (the socket's one timer, as for reads).
    pub(super) fn poll_write_timer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (Some(timeout), Some(since)) = (self.config.write_timeout, self.write_stalled) else {
            return Poll::Pending;
        };
        self.poll_timer_until(cx, since + timeout).map(|()| Err(io::ErrorKind::TimedOut.into()))
    }

    /// The peer accepted no byte for `write_timeout`: give it up without a closing handshake
    /// (it reads nothing, so a Close frame could not reach it); queued output is freed.
    pub(super) fn write_timed_out(&mut self) -> Error {
        let reason = "write timeout";
        tracing::debug!(reason, "giving the peer up");
        if self.ended.is_none() {
            self.ended = Some(Box::new(Ended { code: CloseCode::ABNORMAL, reason: reason.into() }));
        }
        // Frees the output too.
        self.finished();
        // One attempt to send FIN (the stream is dropped soon anyway); nothing waits.
        let waker = std::task::Waker::noop();
        let _ = Pin::new(&mut self.stream).poll_shutdown(&mut Context::from_waker(waker));
        Error::Closed { code: CloseCode::ABNORMAL, reason: reason.into() }
    }

    /// Writes queued output until at most `limit` bytes remain (then flushes the stream).
    /// Segments and the output buffer go out together in one vectored write.
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
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
    pub(super) fn advance_output(&mut self, mut n: usize) {
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
}
