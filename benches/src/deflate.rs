//! permessage-deflate for `wsload --deflate` (RFC 7692): the offer Chromium makes, the check
//! of the server's answer, and each connection's compressor and inflater. The compression is
//! ws-proto's own: a client-role [`ws_proto::Connection`] with the agreed parameters frames,
//! compresses and masks what a connection sends and parses and inflates what it receives;
//! wsload only moves the bytes.

use ws_proto::bytes::BytesMut;
use ws_proto::{
    CloseCode, Config, Connection, DeflateConfig, DeflateParams, Event, MessageKind, ProtocolError, Role,
    SendError, validate_deflate_response,
};

use crate::frame::{BINARY, TEXT};
use crate::handshake::HandshakeError;

/// What `wsload --deflate` offers, and how it compresses: as Chromium does,
/// `permessage-deflate; client_max_window_bits` (either side may keep its context, the server
/// may limit the client's window), zlib's default level 6, and every message compressed
/// (Chromium has no minimum size).
///
/// ```
/// assert_eq!(benches::chromium_offer().offer().unwrap(), "permessage-deflate; client_max_window_bits");
/// ```
pub fn chromium_offer() -> DeflateConfig {
    DeflateConfig::default().server_no_context_takeover(false).client_no_context_takeover(false).min_size(0)
}

/// The permessage-deflate a run's connections offer, and whether a server must agree.
#[derive(Debug, Clone)]
pub struct DeflateOffer {
    /// The offer and this end's compression settings.
    pub config: DeflateConfig,
    /// A server that does not agree fails the connection (else it is loaded plain).
    pub required: bool,
}

impl DeflateOffer {
    /// The codec for a connection whose server answered with these `Sec-WebSocket-Extensions`
    /// values; `seed` seeds its masking keys.
    pub fn accept<'a>(
        &self,
        answers: impl IntoIterator<Item = &'a [u8]>,
        seed: u64,
    ) -> Result<Codec, HandshakeError> {
        let agreed = validate_deflate_response(Some(&self.config), answers)
            .map_err(|e| HandshakeError::Deflate(e.to_string()))?;
        if agreed.is_none() && self.required {
            return Err(HandshakeError::DeflateRefused);
        }
        Ok(Codec::new(agreed, &self.config, seed))
    }
}

/// Something a [`Codec`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole data message (inflated if it came compressed), with its opcode.
    Message(u8, ws_proto::bytes::Bytes),
    /// A Ping or a Pong (a Ping's Pong is already queued).
    Control,
    /// The server's Close frame, with its code if it had one.
    Close(Option<u16>),
}

/// One connection's framing once the handshake is done, through ws-proto: messages sent are
/// compressed when permessage-deflate was agreed (RSV1, the context kept or reset per message
/// as agreed), and messages received are inflated (the inflate window kept when the server
/// keeps its context). Without an agreement it frames plainly, the same way.
#[derive(Debug)]
pub struct Codec {
    connection: Connection,
    /// Received bytes not parsed yet (a partial frame).
    input: BytesMut,
    /// A send that failed, reported at the next [`Codec::check`].
    failed: Option<SendError>,
}

impl Codec {
    /// A codec with `agreed` parameters (`None`: no compression) and this end's `config`.
    pub fn new(agreed: Option<DeflateParams>, config: &DeflateConfig, seed: u64) -> Codec {
        let mut connection = Connection::new(Role::Client, Config::client(seed));
        if let Some(params) = agreed {
            connection.set_deflate(params, config);
        }
        Codec { connection, input: BytesMut::new(), failed: None }
    }

    /// The agreed parameters, if compression is on.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.connection.deflate()
    }

    /// Appends the frame of text message `payload` (compressed if agreed) to `out`.
    pub fn text(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        // `send_fragment` takes bytes: the payloads are UTF-8 already, no need to check again.
        if let Err(e) = self.connection.send_fragment(MessageKind::Text, payload, true) {
            self.failed.get_or_insert(e);
        }
        self.drain(out);
    }

    /// Appends a Close frame with code 1000 to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        let _ = self.connection.close(Some((CloseCode::NORMAL, "")));
        self.drain(out);
    }

    /// Takes received bytes, to be read with [`Codec::incoming`].
    pub fn receive(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The next thing received, `None` when the bytes so far are used up. Pongs to Pings are
    /// queued: [`Codec::drain`] them.
    pub fn incoming(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        let incoming = match self.connection.poll_event(&mut self.input)? {
            None => {
                if self.input.is_empty() {
                    // Nothing held between reads: thousands of connections may be open.
                    self.input = BytesMut::new();
                }
                return Ok(None);
            }
            Some(Event::Text(text)) => Incoming::Message(TEXT, text.into_bytes()),
            Some(Event::Binary(bytes)) => Incoming::Message(BINARY, bytes),
            Some(Event::Ping(_) | Event::Pong(_)) => Incoming::Control,
            Some(Event::Close(frame)) => Incoming::Close(frame.map(|f| f.code.0)),
        };
        Ok(Some(incoming))
    }

    /// Appends what ws-proto queued to send (frames, Pongs, the Close) to `out`.
    pub fn drain(&mut self, out: &mut Vec<u8>) {
        let queued = self.connection.output();
        out.extend_from_slice(queued);
        queued.clear();
    }

    /// `Err` if a send failed since the last check.
    pub fn check(&mut self) -> Result<(), SendError> {
        self.failed.take().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use ws_proto::{FrameHeader, HeaderParse, negotiate_deflate};

    use super::*;
    use crate::chat::{CHAT_SIZE, chat_payload};

    /// The frames in `wire`: (FIN, RSV bits, opcode, masked, payload length).
    fn frames(mut wire: &[u8]) -> Vec<(bool, u8, u8, bool, usize)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let Ok(HeaderParse::Complete { header, header_len }) = FrameHeader::parse(wire) else {
                panic!("a whole frame")
            };
            let len = header.payload_len as usize;
            out.push((header.fin, header.rsv, header.opcode.as_u8(), header.mask.is_some(), len));
            wire = &wire[header_len + len..];
        }
        out
    }

    /// A server `Connection` and wsload's codec, agreed on what `policy` makes of Chromium's
    /// offer (or plain when `policy` is `None`).
    fn pair(policy: Option<DeflateConfig>) -> (Connection, Codec) {
        let mut server = Connection::new(Role::Server, Config::default());
        let offer = DeflateOffer { config: chromium_offer(), required: policy.is_some() };
        let answer = policy.map(|policy| {
            let agreed = negotiate_deflate(&policy, [offer.config.offer().unwrap().as_bytes()]).unwrap();
            server.set_deflate(agreed.params, &policy);
            agreed.response
        });
        let codec = offer.accept(answer.iter().map(|a| a.as_bytes()), 7).unwrap();
        assert_eq!(codec.deflate(), server.deflate());
        (server, codec)
    }

    /// Sends `lines` through the codec; the server must read each back intact. Returns the
    /// frames' total length.
    fn send_all(server: &mut Connection, codec: &mut Codec, lines: &[Vec<u8>], compressed: bool) -> usize {
        let mut wire = Vec::new();
        for line in lines {
            let mut out = Vec::new();
            codec.text(line, &mut out);
            let rsv = if compressed { 0b100 } else { 0 };
            let [(fin, bits, opcode, masked, _)] = frames(&out)[..] else { panic!("one frame per message") };
            assert_eq!((fin, bits, opcode, masked), (true, rsv, TEXT, true));
            wire.extend_from_slice(&out);
        }
        codec.check().unwrap();
        let total = wire.len();
        let mut input = BytesMut::from(&wire[..]);
        for line in lines {
            match server.poll_event(&mut input).unwrap() {
                Some(Event::Text(text)) => assert_eq!(text.as_bytes(), &line[..]),
                other => panic!("{other:?}"),
            }
        }
        total
    }

    #[test]
    fn the_server_inflates_what_the_codec_sends_in_every_agreement() {
        let lines: Vec<Vec<u8>> = (0..20).map(|seq| chat_payload(CHAT_SIZE, 3, seq)).collect();
        let plain_size: usize = lines.iter().map(Vec::len).sum();
        let no_takeover =
            DeflateConfig::default().server_no_context_takeover(true).client_no_context_takeover(true);
        let takeover = DeflateConfig::default().server_no_context_takeover(false);

        let (mut server, mut codec) = pair(None);
        assert!(send_all(&mut server, &mut codec, &lines, false) > plain_size);
        let (mut server, mut codec) = pair(Some(no_takeover));
        let reset = send_all(&mut server, &mut codec, &lines, true);
        let (mut server, mut codec) = pair(Some(takeover));
        assert!(!codec.deflate().unwrap().client_no_context_takeover);
        let kept = send_all(&mut server, &mut codec, &lines, true);
        // Compressed, and smaller still when the client keeps its window between lines.
        assert!(reset < plain_size * 9 / 10, "{reset} of {plain_size}");
        assert!(kept < reset * 3 / 4, "context kept {kept}, reset {reset}");
    }

    #[test]
    fn the_codec_inflates_what_the_server_sends_rsv1_on_the_first_frame_only() {
        let takeover = DeflateConfig::default().server_no_context_takeover(false).min_size(64);
        let (mut server, mut codec) = pair(Some(takeover));
        let line = chat_payload(CHAT_SIZE, 1, 1);
        server.send_text(std::str::from_utf8(&line).unwrap()).unwrap();
        // A fragmented compressed message: RSV1 on its first frame, none on the continuation.
        server.send_fragment(MessageKind::Text, &line[..100], false).unwrap();
        server.send_fragment(MessageKind::Text, &line[100..], true).unwrap();
        server.send_text("short").unwrap(); // under min_size: plain
        server.ping(b"p").unwrap();
        let wire = server.take_output();
        let rsv: Vec<(u8, u8)> = frames(&wire).iter().map(|f| (f.2, f.1)).collect();
        assert_eq!(rsv, [(TEXT, 0b100), (TEXT, 0b100), (0, 0), (TEXT, 0), (0x9, 0)]);

        // Fed a byte at a time, as reads may split anything.
        let mut got = Vec::new();
        for byte in wire.iter() {
            codec.receive(std::slice::from_ref(byte));
            while let Some(incoming) = codec.incoming().unwrap() {
                got.push(incoming);
            }
        }
        let message = |b: &[u8]| Incoming::Message(TEXT, ws_proto::bytes::Bytes::copy_from_slice(b));
        assert_eq!(got, [message(&line), message(&line), message(b"short"), Incoming::Control]);
        // The Pong and the Close go out masked, without RSV1.
        let mut out = Vec::new();
        codec.drain(&mut out);
        codec.close(&mut out);
        assert_eq!(frames(&out), [(true, 0, 0xA, true, 1), (true, 0, 0x8, true, 2)]);
    }

    #[test]
    fn rsv1_on_a_continuation_fails_the_connection() {
        let (_, mut codec) = pair(Some(DeflateConfig::default()));
        // A text frame (not final, RSV1 clear), then a continuation with RSV1.
        codec.receive(&[0x01, 0x01, b'a', 0xC0, 0x01, b'b']);
        assert!(matches!(codec.incoming(), Err(ProtocolError::ReservedBits(_))), "{:?}", codec.incoming());
    }

    #[test]
    fn a_refusal_fails_only_when_required() {
        let offer = DeflateOffer { config: chromium_offer(), required: true };
        assert_eq!(offer.accept([], 1).unwrap_err(), HandshakeError::DeflateRefused);
        let optional = DeflateOffer { required: false, ..offer.clone() };
        assert!(optional.accept([], 1).unwrap().deflate().is_none());
        assert!(matches!(offer.accept([&b"x-other"[..]], 1), Err(HandshakeError::Deflate(_))));
        let agreed = offer.accept([&b"permessage-deflate; server_no_context_takeover"[..]], 1).unwrap();
        assert!(agreed.deflate().unwrap().server_no_context_takeover);
    }
}
