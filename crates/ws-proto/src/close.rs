//! Close codes and the Close frame payload (RFC 6455 sections 5.5.1, 7.4).

use alloc::string::String;
use bytes::BufMut;

use crate::ProtocolError;

/// Longest reason that fits a Close frame: 125 bytes of payload less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// A close status code (section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a Close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// May this code appear in a Close frame on the wire? 1000-1003, 1007-1014 (the IANA
    /// registry) and 3000-4999 may; 1004-1006, 1015, 1016-2999 and everything outside
    /// 1000-4999 may not.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl core::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The contents of a Close frame: a code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most [`MAX_CLOSE_REASON`] bytes of UTF-8.
    pub reason: String,
}

/// Parses a received Close payload. Empty means "no status" (`Ok(None)`); one byte, a code
/// not allowed on the wire, or a reason that is not UTF-8 are protocol errors (the last is
/// answered with 1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = core::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason: reason.into() }))
        }
    }
}

/// Appends a Close payload. `None` writes the empty payload; a reason longer than
/// [`MAX_CLOSE_REASON`] bytes is cut at the last character boundary that fits.
pub fn encode_close_payload<B: BufMut>(frame: Option<(CloseCode, &str)>, out: &mut B) {
    if let Some((code, reason)) = frame {
        out.put_u16(code.0);
        out.put_slice(truncate_reason(reason).as_bytes());
    }
}

/// `reason` cut to at most [`MAX_CLOSE_REASON`] bytes without splitting a character.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn wire_validity_of_codes() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [3000, 3999, 4000, 4999] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn parse_and_encode_round_trip() {
        let mut out = Vec::new();
        encode_close_payload(Some((CloseCode(4001), "bye ü")), &mut out);
        let frame = parse_close_payload(&out).unwrap().unwrap();
        assert_eq!(frame.code, CloseCode(4001));
        assert_eq!(frame.reason, "bye ü");
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn bad_payloads() {
        assert_eq!(parse_close_payload(&[3]), Err(ProtocolError::InvalidClosePayload));
        assert_eq!(parse_close_payload(&[0x03, 0xED]), Err(ProtocolError::InvalidCloseCode(1005)));
        assert_eq!(parse_close_payload(&[0x03, 0xE8, 0xFF]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn long_reason_truncated_on_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&reason);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut.len(), 122);
    }
}
