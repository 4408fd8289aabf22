//! One client connection: TCP with `TCP_NODELAY`, the hand-written handshake, reads parsed in
//! place out of one buffer shared by every connection of the (single) thread, and writes of
//! prebuilt frames.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::time::Duration;

use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::frame::{CLOSE, PONG, client_frame};
use crate::handshake::{HandshakeError, Target, check_response};
use crate::message::{Event, MessageReader, ProtocolError};

thread_local! {
    /// The read buffer of every connection on this thread: the parser keeps no payload, so a
    /// read's bytes are used up before the next connection reads.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// Why a connection stopped.
#[derive(Debug)]
pub enum Failure {
    /// A socket error.
    Io(io::Error),
    /// The server closed the TCP connection.
    Eof,
    /// The server sent a close frame, with this code.
    Closed(Option<u16>),
    /// The server broke the framing rules.
    Protocol(ProtocolError),
    /// The server refused or botched the upgrade.
    Handshake(HandshakeError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "i/o: {e}"),
            Failure::Eof => f.write_str("connection closed by the server without a close frame"),
            Failure::Closed(code) => write!(f, "close frame from the server (code {code:?})"),
            Failure::Protocol(e) => write!(f, "protocol: {e}"),
            Failure::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

/// An open WebSocket client connection.
#[derive(Debug)]
pub struct Socket {
    stream: TcpStream,
    messages: MessageReader,
    /// Bytes that arrived with the handshake's answer, not parsed yet.
    early: Vec<u8>,
    /// Frames to send at the next [`Socket::flush`].
    out: Vec<u8>,
}

impl Socket {
    /// Connects and upgrades.
    pub async fn connect(target: &Target) -> Result<Socket, Failure> {
        let mut stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&target.request()).await?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut chunk) {
                Ok(0) => return Err(Failure::Eof),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(len) = check_response(&head).map_err(Failure::Handshake)? {
                head.drain(..len);
                return Ok(Socket { stream, messages: MessageReader::new(), early: head, out: Vec::new() });
            }
        }
    }

    /// Waits for the server, reads once, and hands every complete event of what arrived to
    /// `on`, with the buffer of frames to send (see [`Socket::flush`]). Pings are answered
    /// here. Cancel-safe: what is read is handled before it returns.
    pub async fn read(&mut self, mut on: impl FnMut(Event<'_>, &mut Vec<u8>)) -> Result<(), Failure> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            return parse(&mut self.messages, &early, &mut self.out, &mut on);
        }
        let Socket { stream, messages, out, .. } = self;
        // `poll_read` rather than `readable` + `try_read`: tokio takes a short read to mean
        // the socket is drained, which saves the read that would only say EAGAIN.
        std::future::poll_fn(|cx| {
            READ_BUF.with_borrow_mut(|buf| {
                let mut filled = ReadBuf::new(buf);
                match Pin::new(&mut *stream).poll_read(cx, &mut filled) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                    Poll::Ready(Ok(())) if filled.filled().is_empty() => Poll::Ready(Err(Failure::Eof)),
                    Poll::Ready(Ok(())) => Poll::Ready(parse(messages, filled.filled(), out, &mut on)),
                }
            })
        })
        .await
    }

    /// Queues bytes (prebuilt frames) for the next [`Socket::flush`].
    pub fn queue(&mut self, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Failure> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes one frame now (anything queued goes first).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), Failure> {
        self.flush().await?;
        self.stream.write_all(frame).await?;
        Ok(())
    }

    /// The closing handshake (§7.1.2): sends close 1000, then reads (ignoring data) until the
    /// server's close frame, within `limit`, and shuts the TCP connection down. `Ok` only if
    /// the server answered with a close frame in time.
    pub async fn close(mut self, limit: Duration) -> Result<(), Failure> {
        let result = tokio::time::timeout(limit, async {
            self.send(&client_frame(CLOSE, &1000u16.to_be_bytes())).await?;
            loop {
                match self.read(|_, _| {}).await {
                    Ok(()) => self.flush().await?,
                    Err(Failure::Closed(_)) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        let _ = self.stream.shutdown().await;
        result.unwrap_or_else(|_| Err(Failure::Io(io::ErrorKind::TimedOut.into())))
    }
}

/// Runs `input` through the message reader; pings are answered into `out`, close frames end
/// the connection, everything else goes to `on`.
fn parse(
    messages: &mut MessageReader,
    input: &[u8],
    out: &mut Vec<u8>,
    on: &mut impl FnMut(Event<'_>, &mut Vec<u8>),
) -> Result<(), Failure> {
    let mut pos = 0;
    loop {
        let (n, event) = messages.next(&input[pos..]).map_err(Failure::Protocol)?;
        pos += n;
        match event {
            None => return Ok(()),
            Some(Event::Ping(payload)) => out.extend_from_slice(&client_frame(PONG, payload)),
            Some(Event::Pong) => {}
            Some(Event::Close(code)) => return Err(Failure::Closed(code)),
            Some(event) => on(event, out),
        }
    }
}
