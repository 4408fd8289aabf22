//! One client connection: TCP with `TCP_NODELAY` (TLS over it for `wss://`), the hand-written
//! handshake, reads parsed in place out of one buffer shared by every connection of the
//! (single) thread, and writes of prebuilt frames.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

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

/// How a run's connections are opened: plain TCP, or TLS with one client configuration.
#[derive(Clone)]
pub struct Connector {
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("tls", &self.tls.as_ref().map(|(_, name)| name)).finish()
    }
}

impl Connector {
    /// For `target`: TLS with `config` (see [`crate::client_config`]) if it is `wss://`,
    /// verifying the certificate for its host.
    pub fn new(target: &Target, config: Option<Arc<rustls::ClientConfig>>) -> io::Result<Connector> {
        if !target.tls {
            return Ok(Connector { tls: None });
        }
        let config = config.ok_or_else(|| io::Error::other("wss:// without a TLS configuration"))?;
        // The name the certificate must hold: `localhost`, or the loopback address.
        let name = if target.host.starts_with("localhost") {
            ServerName::try_from("localhost").expect("a valid DNS name")
        } else {
            ServerName::IpAddress(target.addr.ip().into())
        };
        Ok(Connector { tls: Some((TlsConnector::from(config), name)) })
    }
}

/// The bytes under a connection. The TLS state (rustls' buffers and keys, a few KiB) is boxed
/// so that a plain socket stays small; reads and writes branch once, then run the variant's
/// own code (`read_parse`, `write_all_now`). The `AsyncRead`/`AsyncWrite` impls serve the
/// handshake and the shutdown.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// Writes all of `bytes` and, for TLS, the records rustls may still hold.
    async fn write_all_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

/// An open WebSocket client connection.
#[derive(Debug)]
pub struct Socket {
    stream: Stream,
    messages: MessageReader,
    /// Bytes that arrived with the handshake's answer, not parsed yet.
    early: Vec<u8>,
    /// Frames to send at the next [`Socket::flush`].
    out: Vec<u8>,
}

impl Socket {
    /// Connects (and for TLS, completes the TLS handshake) and upgrades.
    pub async fn connect(target: &Target, connector: &Connector) -> Result<Socket, Failure> {
        let tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let mut stream = match &connector.tls {
            None => Stream::Plain(tcp),
            Some((tls, name)) => Stream::Tls(Box::new(tls.connect(name.clone(), tcp).await?)),
        };
        stream.write_all_now(&target.request()).await?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await? {
                0 => return Err(Failure::Eof),
                n => head.extend_from_slice(&chunk[..n]),
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
        // One branch per read, outside the loop: each variant gets its own copy of it, so the
        // plain one is exactly what it was before TLS came in.
        match stream {
            Stream::Plain(tcp) => read_parse(tcp, messages, out, &mut on).await,
            Stream::Tls(tls) => read_parse(&mut **tls, messages, out, &mut on).await,
        }
    }

    /// Queues bytes (prebuilt frames) for the next [`Socket::flush`].
    pub fn queue(&mut self, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Failure> {
        if !self.out.is_empty() {
            self.stream.write_all_now(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes one frame now (anything queued goes first).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), Failure> {
        self.flush().await?;
        self.stream.write_all_now(frame).await?;
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

/// Reads once from `stream` into the shared buffer and parses what arrived (see
/// [`Socket::read`]).
async fn read_parse<S: AsyncRead + Unpin>(
    stream: &mut S,
    messages: &mut MessageReader,
    out: &mut Vec<u8>,
    on: &mut impl FnMut(Event<'_>, &mut Vec<u8>),
) -> Result<(), Failure> {
    // `poll_read` rather than `readable` + `try_read`: tokio takes a short read to mean the
    // socket is drained, which saves the read that would only say EAGAIN.
    std::future::poll_fn(|cx| {
        READ_BUF.with_borrow_mut(|buf| {
            let mut filled = ReadBuf::new(buf);
            match Pin::new(&mut *stream).poll_read(cx, &mut filled) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                Poll::Ready(Ok(())) if filled.filled().is_empty() => Poll::Ready(Err(Failure::Eof)),
                Poll::Ready(Ok(())) => Poll::Ready(parse(messages, filled.filled(), out, on)),
            }
        })
    })
    .await
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
