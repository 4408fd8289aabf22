//! What the load generator sends: ASCII payloads made once, with a pattern that moves with the
//! position, so a dropped, repeated, shifted or foreign byte in an echo shows.

use crate::frame::{TEXT, client_frame, mask_in_place};
use crate::options::BROADCAST_TAG;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The `variant`-th echo payload: distinct variants differ at every position.
///
/// ```
/// assert_eq!(benches::echo_payload(5, 0), b"01234");
/// assert_eq!(benches::echo_payload(5, 1), b"12345");
/// ```
pub fn echo_payload(size: usize, variant: usize) -> Vec<u8> {
    (0..size).map(|j| ALPHABET[(j + variant) % ALPHABET.len()]).collect()
}

/// The echo messages, plain and as masked frames: consecutive messages of a connection
/// cycle through them, so a lost or repeated echo is caught even with one in flight.
#[derive(Debug)]
pub struct EchoMessages {
    /// The payloads, as the server must echo them.
    pub payloads: Vec<Vec<u8>>,
    /// The same payloads as masked client text frames, built once.
    pub frames: Vec<Vec<u8>>,
}

impl EchoMessages {
    /// Messages of `size` bytes.
    pub fn new(size: usize) -> Self {
        let variants = if size > 1 << 20 { 2 } else { 8 };
        let payloads: Vec<Vec<u8>> = (0..variants).map(|v| echo_payload(size, v)).collect();
        let frames = payloads.iter().map(|p| client_frame(TEXT, p)).collect();
        EchoMessages { payloads, frames }
    }
}

/// A broadcast payload: `{sender:04x}{round:08x}` then the alphabet from position 12 on.
///
/// ```
/// assert_eq!(benches::broadcast_payload(16, 10, 3), b"000a00000003CDEF");
/// ```
pub fn broadcast_payload(size: usize, sender: usize, round: u32) -> Vec<u8> {
    let mut p = echo_payload(size, 0);
    p[..BROADCAST_TAG].copy_from_slice(format!("{:04x}{round:08x}", sender as u16).as_bytes());
    p
}

/// Reads the `(sender, round)` tag of a broadcast payload.
pub fn broadcast_tag(tag: &[u8; BROADCAST_TAG]) -> Option<(usize, u32)> {
    let text = std::str::from_utf8(tag).ok()?;
    let sender = usize::from_str_radix(&text[..4], 16).ok()?;
    let round = u32::from_str_radix(&text[4..], 16).ok()?;
    Some((sender, round))
}

/// One sender's broadcast frame, built once and re-tagged in place each round.
#[derive(Debug)]
pub struct BroadcastFrame {
    frame: Vec<u8>,
    payload_at: usize,
    /// The payload, unmasked, re-tagged with the frame (for a socket that frames it itself).
    payload: Vec<u8>,
}

impl BroadcastFrame {
    /// The frame of `sender`, for round 0.
    pub fn new(size: usize, sender: usize) -> Self {
        let payload = broadcast_payload(size, sender, 0);
        let frame = client_frame(TEXT, &payload);
        BroadcastFrame { payload_at: frame.len() - size, frame, payload }
    }

    /// The frame for `round`: only the eight round digits are rewritten (and masked).
    pub fn for_round(&mut self, round: u32) -> &[u8] {
        let at = self.payload_at + 4;
        let mut digits: [u8; 8] = format!("{round:08x}").into_bytes().try_into().expect("8 digits");
        self.payload[4..12].copy_from_slice(&digits);
        mask_in_place(&mut digits, 4);
        self.frame[at..at + 8].copy_from_slice(&digits);
        &self.frame
    }

    /// The frame of the last [`BroadcastFrame::for_round`].
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The payload of the last [`BroadcastFrame::for_round`], unmasked.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retagged_frame_matches_a_fresh_one() {
        let mut f = BroadcastFrame::new(40, 7);
        for round in [1, 2, 0xdead_beef] {
            assert_eq!(f.for_round(round), client_frame(TEXT, &broadcast_payload(40, 7, round)).as_slice());
            assert_eq!(f.payload(), broadcast_payload(40, 7, round));
        }
        let tag: [u8; BROADCAST_TAG] = broadcast_payload(12, 513, 99)[..].try_into().unwrap();
        assert_eq!(broadcast_tag(&tag), Some((513, 99)));
    }

    #[test]
    fn echo_variants_differ_everywhere() {
        let m = EchoMessages::new(100);
        for (a, b) in m.payloads.iter().zip(m.payloads.iter().skip(1)) {
            assert!(a.iter().zip(b).all(|(x, y)| x != y));
        }
    }
}
