//! Protocol errors, each with the close code the peer must receive.

use crate::CloseCode;

/// A violation of RFC 6455 by the peer, or a limit exceeded. Each one fails the connection
/// with the close code given by [`ProtocolError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV bits set with no extension negotiated (section 5.2).
    ReservedBits(u8),
    /// An opcode reserved for future use (section 5.2).
    ReservedOpCode(u8),
    /// A 64-bit payload length with its most significant bit set (section 5.2).
    LengthOverflow,
    /// A control frame with FIN clear (section 5.5).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlFrameTooLong(u64),
    /// A client frame without a mask (section 5.1).
    UnmaskedClientFrame,
    /// A server frame with a mask (section 5.1).
    MaskedServerFrame,
    /// A continuation frame with no message in progress (section 5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (section 5.4).
    ExpectedContinuation,
    /// A Close payload of one byte (section 5.5.1).
    InvalidClosePayload,
    /// A Close code that may not be sent on the wire (section 7.4).
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not valid UTF-8 (section 8.1).
    InvalidUtf8,
    /// A frame larger than the configured maximum.
    FrameTooBig(u64),
    /// A message larger than the configured maximum (for a compressed one: once inflated).
    MessageTooBig(u64),
    /// A compressed message that does not inflate (RFC 7692 section 7.2.2), answered with 1007.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this error is answered with: 1007 for bad UTF-8 or compressed data
    /// that does not inflate, 1009 for exceeded limits, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig(_) | ProtocolError::MessageTooBig(_) => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }

    /// A short reason suitable for the Close frame.
    pub fn reason(&self) -> &'static str {
        match self {
            ProtocolError::ReservedBits(_) => "reserved bits set",
            ProtocolError::ReservedOpCode(_) => "reserved opcode",
            ProtocolError::LengthOverflow => "invalid payload length",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ControlFrameTooLong(_) => "control frame too long",
            ProtocolError::UnmaskedClientFrame => "client frame not masked",
            ProtocolError::MaskedServerFrame => "server frame masked",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "expected a continuation frame",
            ProtocolError::InvalidClosePayload => "invalid close payload",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::FrameTooBig(_) => "frame too big",
            ProtocolError::MessageTooBig(_) => "message too big",
            ProtocolError::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl core::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (close code {})", self.reason(), self.close_code())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}

/// A send refused by the connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// A Close frame was already sent: no data may follow it (section 5.5.1).
    Closed,
    /// A control frame payload over 125 bytes.
    ControlFrameTooLong,
    /// A continuation of a fragmented message that was never started, or a new message
    /// started while a fragmented one is unfinished.
    FragmentOrder,
    /// A close code that may not be sent.
    InvalidCloseCode(u16),
    /// permessage-deflate is not agreed on this connection, or not with a window that large
    /// ([`Connection::check_send_compressed`](crate::Connection::check_send_compressed)); or
    /// the compressor failed in the middle of a fragmented message.
    Compression,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SendError::Closed => "connection is closing or closed",
            SendError::ControlFrameTooLong => "control frame payload over 125 bytes",
            SendError::FragmentOrder => "fragments out of order",
            SendError::InvalidCloseCode(_) => "close code may not be sent",
            SendError::Compression => "permessage-deflate not agreed, or compression failed",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SendError {}
