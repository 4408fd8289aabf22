//! Frame headers: RFC 6455 section 5.2 (base framing) and 5.5 (control frames).

use bytes::BufMut;

/// A frame's opcode (RFC 6455 section 5.2, "Opcode").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// `0x0`: continues a fragmented message.
    Continuation,
    /// `0x1`: the first frame of a text message.
    Text,
    /// `0x2`: the first frame of a binary message.
    Binary,
    /// `0x8`: close (control).
    Close,
    /// `0x9`: ping (control).
    Ping,
    /// `0xA`: pong (control).
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; reserved values (3-7, 0xB-0xF) give `None`.
    pub fn from_u8(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong are control frames (section 5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Largest payload a control frame may carry (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest possible header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the three low bits (RSV1 is `0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// Result of [`FrameHeader::parse`]: the header and its encoded length, or how many more
/// bytes are needed before anything can be said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderParse {
    /// A complete header that took `header_len` bytes of the input.
    Complete {
        /// The header.
        header: FrameHeader,
        /// Bytes of input the header used.
        header_len: usize,
    },
    /// At least this many more bytes are needed.
    Incomplete(usize),
}

/// Why a header could not be parsed at all (independent of role or state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// An opcode reserved for future use (section 5.2).
    ReservedOpCode(u8),
    /// A 64-bit length with its most significant bit set (section 5.2).
    LengthOverflow,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`. Never panics, whatever the input; reserved
    /// opcodes and 64-bit lengths with the top bit set are errors. RSV bits, control-frame
    /// rules and masking rules depend on the connection and are checked by
    /// [`FrameHeader::validate`]. Non-minimal length encodings are accepted, as the RFC allows
    /// on receive.
    pub fn parse(buf: &[u8]) -> Result<HeaderParse, HeaderError> {
        if buf.len() < 2 {
            return Ok(HeaderParse::Incomplete(2 - buf.len()));
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(HeaderError::ReservedOpCode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let (len_bytes, short) = match b1 & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(n as u64)),
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(HeaderParse::Incomplete(header_len - buf.len()));
        }
        let payload_len = match short {
            Some(n) => n,
            None if len_bytes == 2 => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            None => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let n = u64::from_be_bytes(b);
                if n >> 63 != 0 {
                    return Err(HeaderError::LengthOverflow);
                }
                n
            }
        };
        let mask = masked.then(|| {
            let k = 2 + len_bytes;
            [buf[k], buf[k + 1], buf[k + 2], buf[k + 3]]
        });
        Ok(HeaderParse::Complete {
            header: FrameHeader { fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x07, opcode, mask, payload_len },
            header_len,
        })
    }

    /// Checks the rules that do not depend on message state: no RSV bits (no extension is
    /// negotiated), control frames unfragmented and at most 125 bytes (section 5.5), and the
    /// masking rule for frames sent by `sender` (section 5.1).
    pub fn validate(&self, sender: crate::Role) -> Result<(), crate::ProtocolError> {
        use crate::ProtocolError as E;
        if self.rsv != 0 {
            return Err(E::ReservedBits(self.rsv));
        }
        if self.opcode.is_control() {
            if !self.fin {
                return Err(E::FragmentedControlFrame);
            }
            if self.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(E::ControlFrameTooLong(self.payload_len));
            }
        }
        match (sender, self.mask.is_some()) {
            (crate::Role::Client, false) => Err(E::UnmaskedClientFrame),
            (crate::Role::Server, true) => Err(E::MaskedServerFrame),
            _ => Ok(()),
        }
    }

    /// Bytes this header takes when encoded (minimal length form).
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header to `out`, using the shortest length form.
    ///
    /// ```
    /// use ws_proto::{FrameHeader, OpCode};
    /// let mut out = Vec::new();
    /// FrameHeader { fin: true, rsv: 0, opcode: OpCode::Text, mask: None, payload_len: 5 }
    ///     .encode(&mut out);
    /// assert_eq!(out, [0x81, 0x05]);
    /// ```
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        let b0 = (self.fin as u8) << 7 | (self.rsv & 0x07) << 4 | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.put_u8(b0);
        match self.payload_len {
            n @ 0..=125 => out.put_u8(mask_bit | n as u8),
            n @ 126..=0xFFFF => {
                out.put_u8(mask_bit | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(mask_bit | 127);
                out.put_u64(n);
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }
}
