//! Unguessable identifiers: `WebSocketId` and session ids.

use std::fmt;
use std::str::FromStr;

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS source failing is not recoverable in a meaningful way; fall back to hashing the
    // clock and a counter through std's randomly keyed SipHash, still unguessable in practice.
    if getrandom::fill(&mut buf).is_err() {
        use std::hash::{BuildHasher, Hasher};
        let state = std::collections::hash_map::RandomState::new();
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = state.build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The unique id of one socket (IRIS `WebSocketID`): 128 random bits, shown as 32 hex
/// digits. Not a counter, so it cannot be guessed from another socket's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebSocketId([u8; 16]);

impl WebSocketId {
    /// A fresh random id.
    pub fn new() -> Self {
        WebSocketId(random_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Default for WebSocketId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WebSocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for WebSocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebSocketId({self})")
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a WebSocketID (32 hex digits)")
    }
}

impl std::error::Error for InvalidId {}

impl FromStr for WebSocketId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let s = s.trim();
        if s.len() != 32 || !s.is_ascii() {
            return Err(InvalidId);
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| InvalidId)?;
        }
        Ok(WebSocketId(out))
    }
}

/// A new session id: 192 random bits as 48 hex digits.
pub(crate) fn new_session_id() -> String {
    hex(&random_bytes::<24>())
}

/// Is `s` shaped like a session id this server issues (so a client cannot inject odd
/// characters through the cookie)?
pub(crate) fn is_session_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_differ() {
        let a = WebSocketId::new();
        let b = WebSocketId::new();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(a.to_string().parse::<WebSocketId>(), Ok(a));
        assert_eq!("xyz".parse::<WebSocketId>(), Err(InvalidId));
        assert_eq!("g".repeat(32).parse::<WebSocketId>(), Err(InvalidId));
        assert!(is_session_id(&new_session_id()));
        assert!(!is_session_id("a;b"));
    }
}
