//! One client connection: TCP with `TCP_NODELAY` (TLS over it for `wss://`), the hand-written
//! handshake, reads parsed in place out of one buffer shared by every connection of the
//! (single) thread, and writes of prebuilt frames. With `--deflate` a connection frames,
//! compresses and inflates through ws-proto instead ([`Codec`]). The bytes read and written
//! (WebSocket frames, inside TLS) are counted for the whole thread ([`wire`]).

use std::cell::{Cell, RefCell};
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

use crate::deflate::{Codec, DeflateOffer, Incoming};
use crate::frame::{CLOSE, PONG, TEXT, client_frame, push_client_frame};
use crate::handshake::{HandshakeError, Target, check_response, header_values};
use crate::message::{Event, MessageReader, ProtocolError};

thread_local! {
    /// The read buffer of every connection on this thread: the parser keeps no payload, so a
    /// read's bytes are used up before the next connection reads.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
    /// The bytes every connection on this thread read and wrote after its handshake.
    static WIRE: Cell<Wire> = const { Cell::new(Wire { read: 0, written: 0 }) };
}

/// WebSocket bytes (frames with their headers; inside TLS, if any) read and written by the
/// connections of this thread after their handshakes, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wire {
    /// Bytes read.
    pub read: u64,
    /// Bytes written.
    pub written: u64,
}

/// What the connections of this thread have read and written so far (see [`Wire`]).
pub fn wire() -> Wire {
    WIRE.get()
}

fn count_wire(read: usize, written: usize) {
    WIRE.set(Wire { read: wire().read + read as u64, written: wire().written + written as u64 });
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
    /// `--deflate`: ws-proto found the server's frames wrong (a compressed one included).
    Codec(ws_proto::ProtocolError),
    /// `--deflate`: ws-proto could not send (compress) a message.
    Send(ws_proto::SendError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "i/o: {e}"),
            Failure::Eof => f.write_str("connection closed by the server without a close frame"),
            Failure::Closed(code) => write!(f, "close frame from the server (code {code:?})"),
            Failure::Protocol(e) => write!(f, "protocol: {e}"),
            Failure::Handshake(e) => write!(f, "handshake: {e}"),
            Failure::Codec(e) => write!(f, "protocol (ws-proto): {e}"),
            Failure::Send(e) => write!(f, "send (ws-proto): {e}"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

/// How a run's connections are opened: plain TCP, or TLS with one client configuration; and
/// whether they offer permessage-deflate.
#[derive(Clone)]
pub struct Connector {
    tls: Option<(TlsConnector, ServerName<'static>)>,
    deflate: Option<DeflateOffer>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("deflate", &self.deflate)
            .finish()
    }
}

impl Connector {
    /// For `target`: TLS with `config` (see [`crate::client_config`]) if it is `wss://`,
    /// verifying the certificate for its host.
    pub fn new(target: &Target, config: Option<Arc<rustls::ClientConfig>>) -> io::Result<Connector> {
        if !target.tls {
            return Ok(Connector { tls: None, deflate: None });
        }
        let config = config.ok_or_else(|| io::Error::other("wss:// without a TLS configuration"))?;
        // The name the certificate must hold: `localhost`, or the loopback address.
        let name = if target.host.starts_with("localhost") {
            ServerName::try_from("localhost").expect("a valid DNS name")
        } else {
            ServerName::IpAddress(target.addr.ip().into())
        };
        Ok(Connector { tls: Some((TlsConnector::from(config), name)), deflate: None })
    }

    /// The same, offering permessage-deflate (`None`: offering nothing).
    pub fn with_deflate(mut self, offer: Option<DeflateOffer>) -> Connector {
        self.deflate = offer;
        self
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
    /// `--deflate`: the framing, compression and inflation, in place of `messages` and the
    /// prebuilt frames. Boxed: a plain socket carries one pointer.
    codec: Option<Box<Codec>>,
    /// Bytes that arrived with the handshake's answer, not parsed yet.
    early: Vec<u8>,
    /// Frames to send at the next [`Socket::flush`].
    out: Vec<u8>,
}

/// Where what a connection sends in answer to what it read goes: frames for the next
/// [`Socket::flush`], compressed first if the socket agreed to permessage-deflate.
#[derive(Debug)]
pub struct Outbox<'a> {
    out: &'a mut Vec<u8>,
    codec: Option<&'a mut Codec>,
}

impl Outbox<'_> {
    /// Queues text message `payload`. `frame`, its prebuilt masked frame if there is one, is
    /// what a plain socket sends; a socket with a codec (`--deflate`) frames the payload
    /// through it, compressed if agreed.
    pub fn text(&mut self, payload: &[u8], frame: Option<&[u8]>) {
        match (&mut self.codec, frame) {
            (Some(codec), _) => codec.text(payload, self.out),
            (None, Some(frame)) => self.out.extend_from_slice(frame),
            (None, None) => push_client_frame(self.out, TEXT, payload),
        }
    }
}

impl Socket {
    /// Connects (and for TLS, completes the TLS handshake) and upgrades.
    pub async fn connect(target: &Target, connector: &Connector) -> Result<Socket, Failure> {
        let tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        // Masking keys only need to differ between connections here (loopback, no proxy).
        let seed = u64::from(tcp.local_addr()?.port());
        let mut stream = match &connector.tls {
            None => Stream::Plain(tcp),
            Some((tls, name)) => Stream::Tls(Box::new(tls.connect(name.clone(), tcp).await?)),
        };
        let offer = connector.deflate.as_ref().and_then(|d| d.config.offer());
        stream.write_all_now(&target.request_offering(offer.as_deref())).await?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await? {
                0 => return Err(Failure::Eof),
                n => head.extend_from_slice(&chunk[..n]),
            }
            if let Some(len) = check_response(&head).map_err(Failure::Handshake)? {
                let codec = match &connector.deflate {
                    Some(offer) => Some(Box::new(
                        offer
                            .accept(header_values(&head[..len], "sec-websocket-extensions"), seed)
                            .map_err(Failure::Handshake)?,
                    )),
                    None => None,
                };
                head.drain(..len);
                return Ok(Socket {
                    stream,
                    messages: MessageReader::new(),
                    codec,
                    early: head,
                    out: Vec::new(),
                });
            }
        }
    }

    /// The permessage-deflate parameters this connection agreed to, if any.
    pub fn deflate(&self) -> Option<&ws_proto::DeflateParams> {
        self.codec.as_ref().and_then(|c| c.deflate())
    }

    /// Waits for the server, reads once, and hands every complete event of what arrived to
    /// `on`, with the outbox of messages to send (see [`Socket::flush`]). Pings are answered
    /// here. Cancel-safe: what is read is handled before it returns.
    pub async fn read(&mut self, mut on: impl FnMut(Event<'_>, &mut Outbox<'_>)) -> Result<(), Failure> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            count_wire(early.len(), 0);
            return parse(&mut self.messages, &mut self.codec, &early, &mut self.out, &mut on);
        }
        let Socket { stream, messages, codec, out, .. } = self;
        // One branch per read, outside the loop: each variant gets its own copy of it, so the
        // plain one is exactly what it was before TLS came in.
        match stream {
            Stream::Plain(tcp) => read_parse(tcp, messages, codec, out, &mut on).await,
            Stream::Tls(tls) => read_parse(&mut **tls, messages, codec, out, &mut on).await,
        }
    }

    /// Queues bytes (prebuilt frames) for the next [`Socket::flush`].
    pub fn queue(&mut self, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }

    /// The outbox of messages for the next [`Socket::flush`].
    pub fn outbox(&mut self) -> Outbox<'_> {
        Outbox { out: &mut self.out, codec: self.codec.as_deref_mut() }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Failure> {
        if let Some(codec) = &mut self.codec {
            codec.check().map_err(Failure::Send)?;
        }
        if !self.out.is_empty() {
            self.stream.write_all_now(&self.out).await?;
            count_wire(0, self.out.len());
            self.out.clear();
        }
        Ok(())
    }

    /// Writes one frame now (anything queued goes first).
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), Failure> {
        self.flush().await?;
        self.stream.write_all_now(frame).await?;
        count_wire(0, frame.len());
        Ok(())
    }

    /// The closing handshake (§7.1.2): sends close 1000, then reads (ignoring data) until the
    /// server's close frame, within `limit`, and shuts the TCP connection down. `Ok` only if
    /// the server answered with a close frame in time.
    pub async fn close(mut self, limit: Duration) -> Result<(), Failure> {
        let close = match &mut self.codec {
            Some(codec) => {
                let mut frame = Vec::new();
                codec.close(&mut frame);
                frame
            }
            None => client_frame(CLOSE, &1000u16.to_be_bytes()),
        };
        let result = tokio::time::timeout(limit, async {
            self.send(&close).await?;
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
    codec: &mut Option<Box<Codec>>,
    out: &mut Vec<u8>,
    on: &mut impl FnMut(Event<'_>, &mut Outbox<'_>),
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
                Poll::Ready(Ok(())) => {
                    count_wire(filled.filled().len(), 0);
                    Poll::Ready(parse(messages, codec, filled.filled(), out, on))
                }
            }
        })
    })
    .await
}

/// Runs `input` through the message reader (or the codec); pings are answered into `out`,
/// close frames end the connection, everything else goes to `on`.
fn parse(
    messages: &mut MessageReader,
    codec: &mut Option<Box<Codec>>,
    input: &[u8],
    out: &mut Vec<u8>,
    on: &mut impl FnMut(Event<'_>, &mut Outbox<'_>),
) -> Result<(), Failure> {
    if let Some(codec) = codec {
        return parse_codec(codec, input, out, on);
    }
    let mut pos = 0;
    loop {
        let (n, event) = messages.next(&input[pos..]).map_err(Failure::Protocol)?;
        pos += n;
        match event {
            None => return Ok(()),
            Some(Event::Ping(payload)) => out.extend_from_slice(&client_frame(PONG, payload)),
            Some(Event::Pong) => {}
            Some(Event::Close(code)) => return Err(Failure::Closed(code)),
            Some(event) => on(event, &mut Outbox { out: &mut *out, codec: None }),
        }
    }
}

/// [`parse`] through ws-proto: each whole message, inflated if it came compressed, goes to
/// `on` as start, data and end.
fn parse_codec(
    codec: &mut Codec,
    input: &[u8],
    out: &mut Vec<u8>,
    on: &mut impl FnMut(Event<'_>, &mut Outbox<'_>),
) -> Result<(), Failure> {
    codec.receive(input);
    let result = loop {
        match codec.incoming() {
            Ok(None) => break Ok(()),
            Ok(Some(Incoming::Message(opcode, message))) => {
                let mut outbox = Outbox { out: &mut *out, codec: Some(&mut *codec) };
                on(Event::Start(opcode), &mut outbox);
                if !message.is_empty() {
                    on(Event::Data(&message), &mut outbox);
                }
                on(Event::End, &mut outbox);
            }
            Ok(Some(Incoming::Control)) => {}
            Ok(Some(Incoming::Close(code))) => break Err(Failure::Closed(code)),
            Err(e) => break Err(Failure::Codec(e)),
        }
    };
    codec.drain(out); // Pongs
    result
}
