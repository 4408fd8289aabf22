//! The connection state machine: bytes in, events out; sends written to an output buffer.
//! Sections 5 (framing), 5.4 (fragmentation), 5.5 (control frames), 7 (closing) of RFC 6455.

use alloc::boxed::Box;
use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseFrame, encode_close_payload, parse_close_payload};
use crate::frame::{FrameHeader, HeaderError, HeaderParse, OpCode};

/// RSV1, "Per-Message Compressed" (RFC 7692 section 6).
const RSV1: u8 = 0b100;
use crate::{ProtocolError, Utf8Bytes, Utf8Validator, apply_mask};

mod send;
pub use send::encode_server_frame;

/// The output buffer's size when it is taken again after an idle spell (bytes): room for a
/// burst of small frames without a reallocation per frame. (A caller that keeps released
/// buffers for reuse gives one at least this big back through [`Connection::output`].)
pub const OUTPUT_MIN: usize = 512;

/// While more than this many output bytes wait, a Ping's Pong is not queued behind them but
/// held in a one-frame slot that the next Ping replaces: only the most recent unanswered
/// Ping is answered (RFC 6455 section 5.5.3), so a peer that pings and never reads cannot
/// make the output grow.
pub const PONG_QUEUE_MAX: usize = 4096;

/// Which end of the connection this is. It decides the masking rules (section 5.1): a
/// client masks what it sends and expects unmasked frames; a server the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end that sent the opening handshake.
    Client,
    /// The end that answered it.
    Server,
}

impl Role {
    /// The role of the other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// Limits and behaviour of a [`Connection`]: start from [`Config::default`] (a server) or
/// [`Config::client`], then change what you need with the setters.
///
/// ```
/// let config = ws_proto::Config::client(0x5eed_u64).max_message_size(1 << 20);
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame payload accepted; larger frames fail the connection with 1009.
    pub max_frame_size: usize,
    /// Largest message accepted (all fragments together); larger ones fail with 1009.
    pub max_message_size: usize,
    /// Answer every Ping with a Pong carrying its payload (section 5.5.2).
    pub auto_pong: bool,
    /// Seed for the client's masking keys. A client must set it from a strong random source
    /// (section 10.3); a server never masks and ignores it.
    pub mask_seed: u64,
}

impl Default for Config {
    /// 16 MiB frames, 64 MiB messages, automatic pongs; a server's settings (a client needs
    /// a masking seed: see [`Config::client`]).
    fn default() -> Self {
        Config { max_frame_size: 16 << 20, max_message_size: 64 << 20, auto_pong: true, mask_seed: 0 }
    }
}

impl Config {
    /// A client's settings: the defaults with masking keys drawn from `mask_seed`, which the
    /// caller takes from a strong random source (RFC 6455 section 10.3: an intermediary
    /// must not be able to predict the keys).
    pub fn client(mask_seed: u64) -> Self {
        Config { mask_seed, ..Config::default() }
    }

    /// Sets [`max_frame_size`](Config::max_frame_size).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_message_size`](Config::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`auto_pong`](Config::auto_pong).
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }
}

/// Something the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, validated UTF-8.
    Text(Utf8Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A Ping; with `auto_pong` its Pong is already queued.
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// A Close frame (`None`: it carried no status). The reply, if this end had not closed
    /// first, is already queued; the connection is now closed in both directions.
    Close(Option<CloseFrame>),
}

/// Where the closing handshake stands (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// This end sent a Close and waits for the peer's.
    Closing,
    /// Both Close frames were exchanged, or the connection failed: send nothing more and
    /// close the transport (a server closes TCP first, section 7.1.1).
    Closed,
}

/// Kind of data message, for [`Connection::send_fragment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// The frame being received: its header and how much of its payload was unmasked (and
/// validated, for text) in place so far.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    header: FrameHeader,
    len: usize,
    done: usize,
}

/// One end of a WebSocket connection as a deterministic state machine, with no I/O.
///
/// Feed received bytes by appending them to a `BytesMut` and calling
/// [`poll_event`](Connection::poll_event) until it returns `Ok(None)`; send with
/// [`send_text`](Connection::send_text) and friends, then write out what
/// [`output`](Connection::output) holds.
///
/// ```
/// use bytes::BytesMut;
/// use ws_proto::{Config, Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client, Config::client(42)); // a seed from a strong random source
/// let mut server = Connection::new(Role::Server, Config::default());
/// client.send_text("Hello").unwrap();
///
/// let mut wire = BytesMut::new();
/// wire.extend_from_slice(&client.take_output());
/// match server.poll_event(&mut wire).unwrap() {
///     Some(Event::Text(text)) => assert_eq!(text, "Hello"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    out: BytesMut,
    frame: Option<InFrame>,
    /// Kind of the fragmented message being received, and its bytes so far.
    receiving: Option<MessageKind>,
    message: BytesMut,
    utf8: Utf8Validator,
    /// Kind of the fragmented message being sent.
    sending: Option<MessageKind>,
    /// The message being received (`receiving`) is compressed (RSV1 on its first frame).
    receiving_compressed: bool,
    /// The fragmented message being sent (`sending`) is compressed.
    #[cfg(feature = "deflate")]
    sending_compressed: bool,
    /// permessage-deflate, once agreed ([`Connection::set_deflate`]). Boxed: one pointer on
    /// every connection, the state only where compression was agreed.
    #[cfg(feature = "deflate")]
    deflate: Option<Box<crate::deflate::codec::DeflateState>>,
    close_sent: bool,
    /// Boxed: set once, at the end, and every connection carries the field.
    close_received: Option<Box<Option<CloseFrame>>>,
    failed: Option<ProtocolError>,
    /// The Pong held back while the output is long (see [`PONG_QUEUE_MAX`]). Boxed: rare,
    /// and every connection carries the field.
    pending_pong: Option<Box<Bytes>>,
    rng: u64,
}

impl Connection {
    /// A connection in the `Open` state (the opening handshake is done elsewhere).
    pub fn new(role: Role, config: Config) -> Self {
        let rng = config.mask_seed;
        Connection {
            role,
            config,
            out: BytesMut::new(),
            frame: None,
            receiving: None,
            message: BytesMut::new(),
            utf8: Utf8Validator::new(),
            sending: None,
            receiving_compressed: false,
            #[cfg(feature = "deflate")]
            sending_compressed: false,
            #[cfg(feature = "deflate")]
            deflate: None,
            close_sent: false,
            close_received: None,
            failed: None,
            pending_pong: None,
            rng,
        }
    }

    /// Turns on permessage-deflate (RFC 7692) with the parameters the handshake agreed
    /// ([`negotiate_deflate`](crate::negotiate_deflate) on a server,
    /// [`validate_response_with`](crate::validate_response_with) on a client) and this end's
    /// `config` (level, [`min_size`](crate::DeflateConfig::min_size)); call it before the first
    /// message. From then on a frame with RSV1 starts a compressed message, which is inflated
    /// within [`Config::max_message_size`]; and data messages of at least `min_size` bytes are
    /// sent compressed. Control frames are never compressed.
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: crate::DeflateParams, config: &crate::DeflateConfig) {
        self.deflate = Some(Box::new(crate::deflate::codec::DeflateState::new(self.role, params, config)));
    }

    /// The permessage-deflate parameters in force, if it was agreed.
    pub fn deflate(&self) -> Option<&crate::DeflateParams> {
        #[cfg(feature = "deflate")]
        return self.deflate.as_deref().map(|d| &d.params);
        #[cfg(not(feature = "deflate"))]
        None
    }

    #[cfg(all(test, feature = "deflate"))]
    pub(crate) fn deflate_state(&self) -> Option<&crate::deflate::codec::DeflateState> {
        self.deflate.as_deref()
    }

    fn deflate_on(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.deflate.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the closing handshake stands.
    pub fn state(&self) -> State {
        match (self.close_sent, self.close_received.is_some()) {
            _ if self.failed.is_some() => State::Closed,
            (true, true) => State::Closed,
            (false, false) => State::Open,
            _ => State::Closing,
        }
    }

    /// The peer's Close frame, once received (`Some(None)`: it carried no status).
    pub fn close_received(&self) -> Option<&Option<CloseFrame>> {
        self.close_received.as_deref()
    }

    /// Has this end sent (or queued) its Close frame?
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The error that failed the connection, if one did.
    pub fn failure(&self) -> Option<ProtocolError> {
        self.failed
    }

    /// Bytes waiting to be written to the transport. Write them and `advance` the buffer
    /// (or [`take_output`](Connection::take_output) them). A Pong held back while the output
    /// was long joins it here once it is short again.
    pub fn output(&mut self) -> &mut BytesMut {
        if self.pending_pong.is_some() {
            self.release_pong();
        }
        &mut self.out
    }

    /// How many bytes wait to be written (a held-back Pong included).
    pub fn output_len(&self) -> usize {
        self.out.len() + self.pending_pong.as_ref().map_or(0, |p| 2 + p.len())
    }

    /// Takes everything waiting to be written.
    pub fn take_output(&mut self) -> BytesMut {
        if self.pending_pong.is_some() {
            self.release_pong();
        }
        self.out.split()
    }

    /// Is a Pong held back, waiting for the output to shrink?
    pub fn pong_pending(&self) -> bool {
        self.pending_pong.is_some()
    }

    /// Queues the held-back Pong once the output is short enough.
    fn release_pong(&mut self) {
        if self.out.len() <= PONG_QUEUE_MAX
            && let Some(payload) = self.pending_pong.take()
            && !self.close_sent
        {
            self.write_frame(OpCode::Pong, true, &payload);
        }
    }

    /// Releases the memory of idle buffers (the output buffer when empty, the reassembly
    /// buffer between messages), so an idle connection holds no allocation.
    pub fn shrink_idle(&mut self) {
        if self.out.is_empty() {
            self.out = BytesMut::new();
        }
        if self.receiving.is_none() {
            self.message = BytesMut::new();
        }
    }

    /// Reads the next event from `input`, consuming exactly the bytes of the frames it
    /// parsed. `Ok(None)` means more bytes are needed (or the connection is closed).
    ///
    /// Payloads are unmasked in place as they arrive, and text is validated as it arrives, so
    /// invalid UTF-8 fails the connection before the rest of the frame comes. An unfragmented
    /// message is split off `input` without copying. On an error the Close frame with the
    /// error's code is already queued and the state is `Closed`.
    pub fn poll_event(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            if self.failed.is_some() || self.close_received.is_some() {
                return Ok(None);
            }
            let mut frame = match self.frame {
                Some(frame) => frame,
                None => match FrameHeader::parse(input) {
                    Ok(HeaderParse::Incomplete(_)) => return Ok(None),
                    Ok(HeaderParse::Complete { header, header_len }) => {
                        let len = self.check_header(&header).map_err(|e| self.fail(e))?;
                        input.advance(header_len);
                        InFrame { header, len, done: 0 }
                    }
                    Err(HeaderError::ReservedOpCode(op)) => {
                        return Err(self.fail(ProtocolError::ReservedOpCode(op)));
                    }
                    Err(HeaderError::LengthOverflow) => {
                        return Err(self.fail(ProtocolError::LengthOverflow));
                    }
                },
            };
            let avail = input.len().min(frame.len);
            if avail > frame.done {
                let fresh = &mut input[frame.done..avail];
                if let Some(key) = frame.header.mask {
                    apply_mask(fresh, key, frame.done);
                }
                if self.is_text_payload(&frame.header) && self.utf8.feed(fresh).is_err() {
                    return Err(self.fail(ProtocolError::InvalidUtf8));
                }
                frame.done = avail;
            }
            if avail < frame.len {
                self.frame = Some(frame);
                return Ok(None);
            }
            self.frame = None;
            let payload = input.split_to(frame.len);
            if let Some(event) = self.on_frame(frame.header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Does `input` (the bytes not yet consumed by [`poll_event`](Connection::poll_event))
    /// hold at least one complete frame? Lets an adapter batch its writes while more input
    /// is already waiting to be processed.
    pub fn has_complete_frame(&self, input: &[u8]) -> bool {
        if self.failed.is_some() || self.close_received.is_some() {
            return false;
        }
        match self.frame {
            Some(frame) => input.len() >= frame.len,
            None => match FrameHeader::parse(input) {
                Ok(HeaderParse::Complete { header, header_len }) => {
                    (input.len() - header_len) as u64 >= header.payload_len
                }
                _ => false,
            },
        }
    }

    /// Is this payload text to validate as it arrives? (Compressed text is validated once
    /// inflated.)
    fn is_text_payload(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            OpCode::Text => header.rsv == 0,
            OpCode::Continuation => self.receiving == Some(MessageKind::Text) && !self.receiving_compressed,
            _ => false,
        }
    }

    /// Rules that depend on configuration and message state; returns the payload length.
    fn check_header(&self, header: &FrameHeader) -> Result<usize, ProtocolError> {
        // RSV1 is allowed only on the first frame of a message, with permessage-deflate
        // (RFC 7692 section 6.1); anywhere else validate() refuses it with 1002.
        let compressed =
            header.rsv == RSV1 && matches!(header.opcode, OpCode::Text | OpCode::Binary) && self.deflate_on();
        if compressed {
            FrameHeader { rsv: 0, ..*header }.validate(self.role.peer())?;
        } else {
            header.validate(self.role.peer())?;
        }
        let len = header.payload_len;
        if len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig(len));
        }
        match (header.opcode, self.receiving) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            _ => {}
        }
        // A compressed message's limit applies to its inflated size, checked as it inflates.
        if !header.opcode.is_control() && !compressed && !self.receiving_compressed {
            let total = self.message.len() as u64 + len;
            if total > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig(total));
            }
        }
        Ok(len as usize)
    }

    fn on_frame(&mut self, header: FrameHeader, payload: BytesMut) -> Result<Option<Event>, ProtocolError> {
        let kind = match header.opcode {
            OpCode::Ping => {
                let payload = payload.freeze();
                if self.config.auto_pong && !self.close_sent {
                    if self.out.len() <= PONG_QUEUE_MAX && self.pending_pong.is_none() {
                        self.write_frame(OpCode::Pong, true, &payload);
                    } else {
                        // The output is long: answer only the latest Ping (section 5.5.3).
                        self.pending_pong = Some(Box::new(payload.clone()));
                    }
                }
                return Ok(Some(Event::Ping(payload)));
            }
            OpCode::Pong => return Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => return self.on_close(&payload).map(Some),
            OpCode::Text | OpCode::Binary if header.rsv != 0 => {
                let kind =
                    if header.opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                return self.on_compressed(kind, header.fin, &payload);
            }
            OpCode::Continuation if self.receiving_compressed => {
                let kind = self.receiving.unwrap_or(MessageKind::Binary);
                return self.on_compressed(kind, header.fin, &payload);
            }
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
            OpCode::Continuation => {
                self.message.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let kind = self.receiving.take().unwrap_or(MessageKind::Binary);
                let data = core::mem::take(&mut self.message).freeze();
                return self.finish_message(kind, data).map(Some);
            }
        };
        if header.fin {
            return self.finish_message(kind, payload.freeze()).map(Some);
        }
        self.receiving = Some(kind);
        self.message.extend_from_slice(&payload);
        Ok(None)
    }

    /// A frame of a compressed message (RFC 7692 section 7.2.2): inflated onto the message so
    /// far, within `max_message_size`, text validated as it comes out.
    #[cfg(feature = "deflate")]
    fn on_compressed(
        &mut self,
        kind: MessageKind,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Event>, ProtocolError> {
        let Some(deflate) = self.deflate.as_deref_mut() else {
            return Err(self.fail(ProtocolError::ReservedBits(RSV1)));
        };
        let from = deflate.inflated().len();
        let inflated = deflate.inflate(payload, fin, self.config.max_message_size);
        // Validate what came out even on an error: bad text is reported before a bad tail.
        if kind == MessageKind::Text && self.utf8.feed(&deflate.inflated()[from..]).is_err() {
            return Err(self.fail(ProtocolError::InvalidUtf8));
        }
        if let Err(e) = inflated {
            return Err(self.fail(e));
        }
        if !fin {
            self.receiving = Some(kind);
            self.receiving_compressed = true;
            return Ok(None);
        }
        let data = Bytes::from(deflate.take_message());
        self.receiving = None;
        self.receiving_compressed = false;
        self.finish_message(kind, data).map(Some)
    }

    #[cfg(not(feature = "deflate"))]
    fn on_compressed(&mut self, _: MessageKind, _: bool, _: &[u8]) -> Result<Option<Event>, ProtocolError> {
        // check_header lets no RSV1 through without the feature.
        Err(self.fail(ProtocolError::ReservedBits(RSV1)))
    }

    fn finish_message(&mut self, kind: MessageKind, data: Bytes) -> Result<Event, ProtocolError> {
        match kind {
            MessageKind::Binary => Ok(Event::Binary(data)),
            MessageKind::Text => {
                if self.utf8.finish().is_err() {
                    return Err(self.fail(ProtocolError::InvalidUtf8));
                }
                Ok(Event::Text(Utf8Bytes::from_validated(data)))
            }
        }
    }

    fn on_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let frame = parse_close_payload(payload).map_err(|e| self.fail(e))?;
        if !self.close_sent {
            // Echo the status code back (section 5.5.1), and the reason with it, so the peer
            // can see its Close arrived intact.
            let mut body = BytesMut::new();
            encode_close_payload(frame.as_ref().map(|f| (f.code, f.reason.as_str())), &mut body);
            self.write_frame(OpCode::Close, true, &body);
            self.close_sent = true;
            self.pending_pong = None;
        }
        self.close_received = Some(Box::new(frame.clone()));
        Ok(Event::Close(frame))
    }

    /// Fails the connection: queue a Close with the error's code (unless one was sent).
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if !self.close_sent {
            let mut body = BytesMut::new();
            encode_close_payload(Some((error.close_code(), error.reason())), &mut body);
            self.write_frame(OpCode::Close, true, &body);
            self.close_sent = true;
            self.pending_pong = None;
        }
        self.failed = Some(error);
        self.frame = None;
        self.receiving = None;
        self.receiving_compressed = false;
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_deref_mut() {
            deflate.abort();
        }
        self.message = BytesMut::new();
        self.utf8.reset();
        error
    }
}
