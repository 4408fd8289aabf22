//! The sending side of a [`Connection`]: data messages, fragments, control frames, the
//! Close, pre-encoded broadcast frames, and masking (sections 5.2, 5.3, 5.4, 5.5).

use bytes::{Bytes, BytesMut};

#[cfg(feature = "deflate")]
use super::RSV1;
use super::{Connection, MessageKind, OUTPUT_MIN, Role};
use crate::close::{CloseCode, encode_close_payload};
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode};
use crate::{SendError, apply_mask};
#[cfg(feature = "deflate")]
use alloc::vec::Vec;

impl Connection {
    pub(super) fn check_can_send(&self) -> Result<(), SendError> {
        if self.close_sent || self.failed.is_some() {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// Queues a text message in one frame.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_message(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_message(OpCode::Binary, data)
    }

    pub(super) fn send_message(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(SendError::FragmentOrder);
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_deref_mut()
            && data.len() >= deflate.min_size
        {
            let mut packed = Vec::new();
            if deflate.compress(data, true, &mut packed).is_ok() {
                self.write_frame_rsv(opcode, true, RSV1, &packed);
                return Ok(());
            }
            // The compressor failed (it cannot on valid input): the message goes plain.
        }
        self.write_frame(opcode, true, data);
        Ok(())
    }

    /// Queues one fragment of a message sent in several frames (section 5.4): the first call
    /// starts a message of `kind`, later ones continue it, and `fin` ends it. Control frames
    /// may be sent between fragments. The caller keeps text fragments' concatenation valid
    /// UTF-8 (a fragment may end inside a character).
    ///
    /// With permessage-deflate, a fragmented message is compressed (each fragment's bytes are
    /// compressed and flushed into its frame, RSV1 on the first) unless it is a single
    /// fragment shorter than [`min_size`](crate::DeflateConfig::min_size).
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), SendError> {
        self.check_can_send()?;
        let opcode = match self.sending {
            None => match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            Some(k) if k == kind => OpCode::Continuation,
            Some(_) => return Err(SendError::FragmentOrder),
        };
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_deref_mut() {
            let compressed = match self.sending {
                None => !fin || data.len() >= deflate.min_size,
                Some(_) => self.sending_compressed,
            };
            if compressed {
                let mut packed = Vec::new();
                deflate.compress(data, fin, &mut packed).map_err(|()| SendError::Compression)?;
                let rsv = if opcode == OpCode::Continuation { 0 } else { RSV1 };
                self.sending = if fin { None } else { Some(kind) };
                self.sending_compressed = !fin;
                self.write_frame_rsv(opcode, fin, rsv, &packed);
                return Ok(());
            }
        }
        self.sending = if fin { None } else { Some(kind) };
        self.write_frame(opcode, fin, data);
        Ok(())
    }

    /// Queues a Ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited Pong (payload at most 125 bytes), e.g. as a heartbeat.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    pub(super) fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.check_can_send()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlFrameTooLong);
        }
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Queues a Close frame (section 5.5.1): `None` sends no status; otherwise the code must
    /// be one allowed on the wire and the reason is cut to 123 bytes on a character boundary.
    /// After this no data can be sent; keep polling for the peer's Close.
    pub fn close(&mut self, frame: Option<(CloseCode, &str)>) -> Result<(), SendError> {
        self.check_can_send()?;
        if let Some((code, _)) = frame
            && !code.is_valid_on_wire()
        {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        let mut body = BytesMut::new();
        encode_close_payload(frame, &mut body);
        self.write_frame(OpCode::Close, true, &body);
        self.close_sent = true;
        self.pending_pong = None;
        Ok(())
    }

    /// Queues only the header of an unfragmented, unmasked message of `len` bytes (server
    /// role): the caller sends the payload itself right after what [`output`] holds, e.g. as
    /// a second buffer in a vectored write, so a large payload is never copied. The message
    /// goes uncompressed (RSV1 clear), which permessage-deflate allows at any time.
    ///
    /// [`output`]: Connection::output
    pub fn send_header_only(&mut self, kind: MessageKind, len: usize) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() || self.role != Role::Server {
            return Err(SendError::FragmentOrder);
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: len as u64 };
        self.reserve_output(header.encoded_len());
        header.encode(&mut self.out);
        Ok(())
    }

    /// Queues bytes that are already one or more complete, unmasked data frames (from
    /// [`encode_server_frame`]): the way one encoded broadcast reaches many connections.
    /// Only a server may send unmasked frames.
    pub fn send_encoded(&mut self, frames: &[u8]) -> Result<(), SendError> {
        self.check_send_encoded()?;
        self.reserve_output(frames.len());
        self.out.extend_from_slice(frames);
        Ok(())
    }

    /// May complete encoded frames be sent now? For a caller that sends them itself, right
    /// after what [`output`](Connection::output) holds (a shared broadcast buffer, say).
    pub fn check_send_encoded(&self) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() || self.role != Role::Server {
            return Err(SendError::FragmentOrder);
        }
        Ok(())
    }

    /// May a compressed frame from [`encode_compressed_frame`](crate::encode_compressed_frame)
    /// made with `window_bits` be sent now? As [`check_send_encoded`], and permessage-deflate
    /// must be agreed with a server window of at least `window_bits`
    /// ([`DeflateParams::accepts_shared`](crate::DeflateParams::accepts_shared); else
    /// [`SendError::Compression`]: send it plain or compress it for this connection). When it
    /// may, and this end keeps a compression context for the peer, the context is dropped, as
    /// the peer's window is about to hold bytes it never saw: the caller must then send the
    /// frame. [`send_encoded`] takes the frame's bytes as for a plain one.
    ///
    /// [`check_send_encoded`]: Connection::check_send_encoded
    /// [`send_encoded`]: Connection::send_encoded
    pub fn check_send_compressed(&mut self, window_bits: u8) -> Result<(), SendError> {
        self.check_send_encoded()?;
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_deref_mut()
            && deflate.params.accepts_shared(window_bits)
        {
            deflate.forget_outgoing_context();
            return Ok(());
        }
        let _ = window_bits;
        Err(SendError::Compression)
    }

    #[inline]
    pub(super) fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.write_frame_rsv(opcode, fin, 0, payload);
    }

    pub(super) fn write_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = match self.role {
            Role::Client => Some(self.next_mask()),
            Role::Server => None,
        };
        let header = FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 };
        self.reserve_output(header.encoded_len() + payload.len());
        header.encode(&mut self.out);
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.out[start..], key, 0);
        }
    }

    /// Room for `n` more output bytes. The buffer is released when idle
    /// ([`shrink_idle`](Connection::shrink_idle)); taken again, it starts at
    /// [`OUTPUT_MIN`] bytes so that a burst of small frames (replies to pipelined
    /// messages) does not grow it one reallocation per frame.
    pub(super) fn reserve_output(&mut self, n: usize) {
        if self.out.capacity() == 0 {
            self.out.reserve(n.max(OUTPUT_MIN));
        } else {
            self.out.reserve(n);
        }
    }

    /// wyrand: fast, and fine for masking keys once seeded from a strong source.
    pub(super) fn next_mask(&mut self) -> [u8; 4] {
        self.rng = self.rng.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.rng as u128).wrapping_mul((self.rng ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64 ^ t as u64).to_le_bytes()[..4].try_into().unwrap_or([0; 4])
    }
}

/// Encodes one complete unmasked (server-to-client) data frame. Because server frames are not
/// masked, the same bytes can be sent to any number of clients: encode once, share the
/// `Bytes`, and queue it on each connection with [`Connection::send_encoded`].
pub fn encode_server_frame(kind: MessageKind, payload: &[u8]) -> Bytes {
    let opcode = match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    };
    let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: payload.len() as u64 };
    let mut out = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut out);
    out.extend_from_slice(payload);
    out.freeze()
}
