//! Compressing and inflating messages (RFC 7692 section 7.2): raw deflate, a sync flush at the
//! end of each message with its `00 00 ff ff` tail removed on the wire and put back before
//! inflating, the LZ77 window kept or dropped between messages per direction.
//!
//! With no context takeover in a direction, nothing is kept between messages: the compressor
//! or inflater goes back to a one-slot spare per thread (reset), where the next message of any
//! connection on that thread takes it, so an idle connection holds no compression state and a
//! busy thread does not allocate a 300 KiB compressor per message.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{DeflateConfig, DeflateParams, MIN_WINDOW_BITS};
use crate::frame::{FrameHeader, OpCode};
use crate::{MessageKind, ProtocolError, Role};

/// What a sync flush ends with; removed from each compressed message (section 7.2.1) and
/// appended again before inflating it (section 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// RSV1, "Per-Message Compressed" (section 6), in [`FrameHeader::rsv`].
pub(crate) const RSV1: u8 = 0b100;

/// A compressor with the window and level it was made with.
struct Compressor {
    inner: Compress,
    bits: u8,
    level: u8,
}

std::thread_local! {
    /// The reset compressor last released on this thread (see the module docs).
    static SPARE_COMPRESSOR: Cell<Option<Box<Compressor>>> = const { Cell::new(None) };
    /// The reset inflater last released on this thread (15-bit window: inflates any stream).
    static SPARE_INFLATER: Cell<Option<Box<Decompress>>> = const { Cell::new(None) };
}

fn take_compressor(bits: u8, level: u8) -> Box<Compressor> {
    let spare = SPARE_COMPRESSOR.try_with(Cell::take).ok().flatten();
    match spare {
        Some(c) if c.bits == bits && c.level == level => c,
        _ => Box::new(Compressor {
            inner: Compress::new_with_window_bits(Compression::new(level.into()), false, bits),
            bits,
            level,
        }),
    }
}

fn release_compressor(mut c: Box<Compressor>) {
    c.inner.reset();
    let _ = SPARE_COMPRESSOR.try_with(|slot| slot.set(Some(c)));
}

fn take_inflater() -> Box<Decompress> {
    SPARE_INFLATER
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| Box::new(Decompress::new_with_window_bits(false, 15)))
}

fn release_inflater(mut d: Box<Decompress>) {
    d.reset(false);
    let _ = SPARE_INFLATER.try_with(|slot| slot.set(Some(d)));
}

/// The compression state of one connection after permessage-deflate was agreed.
#[derive(Default)]
pub(crate) struct DeflateState {
    pub(crate) params: DeflateParams,
    /// Messages under this many bytes are sent plain.
    pub(crate) min_size: usize,
    level: u8,
    /// This end's sending direction: window bits and whether the window is dropped per message.
    out_bits: u8,
    out_reset: bool,
    /// The peer's sending direction.
    in_bits: u8,
    in_reset: bool,
    /// Present while a message is being compressed, and between messages with context takeover.
    compressor: Option<Box<Compressor>>,
    /// The same for inflating.
    inflater: Option<Box<Decompress>>,
    /// The message being inflated.
    inflated: Vec<u8>,
}

impl core::fmt::Debug for DeflateState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeflateState")
            .field("params", &self.params)
            .field("min_size", &self.min_size)
            .field("compressor", &self.compressor.is_some())
            .field("inflater", &self.inflater.is_some())
            .finish_non_exhaustive()
    }
}

impl DeflateState {
    pub(crate) fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (out, inn) = match role {
            Role::Server => (
                (params.server_max_window_bits, params.server_no_context_takeover),
                (params.client_max_window_bits, params.client_no_context_takeover),
            ),
            Role::Client => (
                (params.client_max_window_bits, params.client_no_context_takeover),
                (params.server_max_window_bits, params.server_no_context_takeover),
            ),
        };
        DeflateState {
            params,
            min_size: config.min_size,
            level: config.level.min(9),
            out_bits: out.0.clamp(MIN_WINDOW_BITS, 15),
            out_reset: out.1,
            // A peer that agreed to 8 bits may still use 9 (zlib cannot do 8); a larger
            // window inflates either.
            in_bits: inn.0.clamp(MIN_WINDOW_BITS, 15),
            in_reset: inn.1,
            ..DeflateState::default()
        }
    }

    /// Appends `data` compressed to `out`, as part of the message being sent; `fin` ends the
    /// message (the tail is removed and, without context takeover, the window dropped).
    pub(crate) fn compress(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<(), ()> {
        let (bits, level) = (self.out_bits, self.level);
        let c = self.compressor.get_or_insert_with(|| take_compressor(bits, level));
        let result = sync_flush(&mut c.inner, data, out);
        if result.is_err() {
            // A broken stream must not go on: the next message starts a new one.
            self.compressor = None;
            return Err(());
        }
        if fin {
            end_message(out);
            if self.out_reset
                && let Some(c) = self.compressor.take()
            {
                release_compressor(c);
            }
        }
        Ok(())
    }

    /// Forgets this end's sending context: the peer's window now holds bytes it never saw (a
    /// shared compressed frame went out in between).
    pub(crate) fn forget_outgoing_context(&mut self) {
        if let Some(c) = self.compressor.take() {
            release_compressor(c);
        }
    }

    /// Inflates one frame's payload of a compressed message into the message so far; `fin`
    /// ends the message (the tail is appended first). The message never grows past `limit`
    /// bytes, nor does the buffer holding it: past the limit it fails with
    /// [`ProtocolError::MessageTooBig`].
    pub(crate) fn inflate(&mut self, data: &[u8], fin: bool, limit: usize) -> Result<(), ProtocolError> {
        let bits = self.in_bits;
        let reset = self.in_reset;
        let d = self.inflater.get_or_insert_with(|| {
            if reset { take_inflater() } else { Box::new(Decompress::new_with_window_bits(false, bits)) }
        });
        let mut ended = inflate_bounded(d, data, &mut self.inflated, limit)?;
        if fin && !ended {
            ended = inflate_bounded(d, &TAIL, &mut self.inflated, limit)?;
        }
        if ended {
            // A final block (BFINAL) ended the deflate stream: the next message starts anew.
            d.reset(false);
        }
        Ok(())
    }

    /// The bytes inflated so far: the new ones are `[from..]`.
    pub(crate) fn inflated(&self) -> &[u8] {
        &self.inflated
    }

    /// Ends the received message, handing out its bytes.
    pub(crate) fn take_message(&mut self) -> Vec<u8> {
        if self.in_reset
            && let Some(d) = self.inflater.take()
        {
            release_inflater(d);
        }
        core::mem::take(&mut self.inflated)
    }

    /// The connection failed: drop whatever is half done.
    pub(crate) fn abort(&mut self) {
        self.inflated = Vec::new();
        self.inflater = None;
        self.compressor = None;
    }
}

/// Ends a message's compressed bytes (section 7.2.1): they must end with an empty stored
/// block, whose last 4 bytes (`00 00 ff ff`) are removed. A sync flush writes that block,
/// except when it follows another with no input in between (an empty last fragment): zlib
/// then writes nothing, so the block's first byte (BFINAL 0, BTYPE 00) is written here and
/// the receiver's tail completes it.
fn end_message(out: &mut Vec<u8>) {
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    } else {
        out.push(0x00);
    }
}

/// Compresses `input` onto `out` and ends with a sync flush (which leaves `00 00 ff ff` last).
fn sync_flush(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    loop {
        out.reserve(input.len() / 2 + 64);
        let before = c.total_in();
        c.compress_vec(input, out, FlushCompress::Sync).map_err(|_| ())?;
        input = &input[(c.total_in() - before) as usize..];
        // With room left over, the flush is complete (zlib fills the output otherwise).
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// Inflates `input` onto `out` without letting `out` (its length or its capacity) pass
/// `limit`; `Ok(true)` if the deflate stream ended (a BFINAL block).
fn inflate_bounded(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, ProtocolError> {
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                // Full at the limit: one more byte of output is one too many.
                let mut probe = [0u8; 64];
                let (in0, out0) = (d.total_in(), d.total_out());
                let status = d
                    .decompress(input, &mut probe, FlushDecompress::None)
                    .map_err(|_| ProtocolError::InvalidCompressedData)?;
                let produced = d.total_out() - out0;
                if produced > 0 {
                    return Err(ProtocolError::MessageTooBig(out.len() as u64 + produced));
                }
                input = &input[(d.total_in() - in0) as usize..];
                if status == Status::StreamEnd {
                    return Ok(true);
                }
                if input.is_empty() || d.total_in() == in0 {
                    return Ok(false);
                }
                continue;
            }
            // Grow by doubling, from a guess of the inflated size, never past the limit.
            let want = (out.capacity() * 2).max(input.len() * 4).max(256).min(limit);
            out.reserve_exact(want - out.len());
        }
        let (in0, len0) = (d.total_in(), out.len());
        let status = d
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|_| ProtocolError::InvalidCompressedData)?;
        input = &input[(d.total_in() - in0) as usize..];
        match status {
            Status::StreamEnd => return Ok(true),
            _ if input.is_empty() && out.len() < out.capacity() => return Ok(false),
            // Room, input, and no progress: the stream is stuck (not valid deflate).
            _ if out.len() == len0 && d.total_in() == in0 && out.len() < out.capacity() => {
                return Err(ProtocolError::InvalidCompressedData);
            }
            _ => {}
        }
    }
}

/// Encodes one complete compressed data frame (RSV1 set, FIN, unmasked: server to client)
/// holding `payload` compressed on its own with a `window_bits` window (9..=15) at `level`:
/// a broadcast compressed once and sent to many connections.
///
/// Valid for every connection whose [`Connection::check_send_compressed`] with the same
/// `window_bits` succeeds: permessage-deflate was agreed and the client allows a server window
/// at least that large ([`DeflateParams::accepts_shared`]). A message compressed on its own
/// inflates in any client window (context or not); a server that keeps its own context for
/// that connection drops it then, since its peer's window moved on without it.
///
/// ```
/// use ws_proto::{MessageKind, encode_compressed_frame};
/// let frame = encode_compressed_frame(MessageKind::Text, br#"{"type":"message","text":"hi hi hi hi"}"#, 15, 6);
/// assert_eq!(frame[0], 0xC1); // FIN, RSV1, text
/// ```
///
/// [`Connection::check_send_compressed`]: crate::Connection::check_send_compressed
pub fn encode_compressed_frame(kind: MessageKind, payload: &[u8], window_bits: u8, level: u8) -> Bytes {
    let mut c = take_compressor(window_bits.clamp(MIN_WINDOW_BITS, 15), level.min(9));
    let mut packed = Vec::new();
    let ok = sync_flush(&mut c.inner, payload, &mut packed).is_ok();
    release_compressor(c);
    if !ok {
        // Cannot happen with a fresh compressor; the plain frame is still a valid message.
        return crate::encode_server_frame(kind, payload);
    }
    end_message(&mut packed);
    let opcode = match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    };
    let header = FrameHeader { fin: true, rsv: RSV1, opcode, mask: None, payload_len: packed.len() as u64 };
    let mut out = BytesMut::with_capacity(header.encoded_len() + packed.len());
    header.encode(&mut out);
    out.put_slice(&packed);
    out.freeze()
}

#[cfg(test)]
mod tests;
