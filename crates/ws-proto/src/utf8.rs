//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 sections
//! 5.6 and 8.1: an endpoint must fail the connection as soon as text is not valid UTF-8).

use core::str;

/// Validates UTF-8 fed in arbitrary pieces. It fails on the first byte that cannot begin or
/// continue a valid sequence (so an invalid message is caught before the rest of it arrives),
/// and carries a code point split across pieces over to the next one.
///
/// ```
/// let mut v = ws_proto::Utf8Validator::new();
/// assert!(v.feed(&[0xE2, 0x82]).is_ok()); // first two bytes of '€'
/// assert!(v.feed(&[0xAC]).is_ok());
/// assert!(v.finish().is_ok());
/// assert!(v.feed(&[0xC0]).is_err()); // never valid
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The bytes fed so far cannot be UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            // Complete the code point left over from the previous piece.
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]) - have;
            let take = need.min(input.len());
            self.pending[have..have + take].copy_from_slice(&input[..take]);
            let joined = &self.pending[..have + take];
            match str::from_utf8(joined) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    self.pending_len = (have + take) as u8;
                    return Ok(());
                }
            }
            input = &input[take..];
        }
        // The SIMD check first (the usual case: valid, whole code points); the standard one
        // only to find where a failing piece went wrong or was cut.
        if simdutf8::basic::from_utf8(input).is_ok() {
            return Ok(());
        }
        match str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // A valid prefix of a code point ends the piece: keep it for the next one.
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: an unfinished code point is an error. Resets for the next message.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any partial code point (for reuse after an error).
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// Length of the sequence a lead byte starts (only called on bytes `from_utf8` accepted as
/// the start of an incomplete sequence, so 2, 3 or 4).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain(core::iter::once(data.len())) {
            if v.feed(&data[start..cut]).is_err() {
                return false;
            }
            start = cut;
        }
        v.finish().is_ok()
    }

    #[test]
    fn fails_fast_mid_message() {
        let mut v = Utf8Validator::new();
        // Autobahn 6.4.1: a 4-byte sequence whose second byte makes it > U+10FFFF.
        assert!(v.feed(&[0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5]).is_ok());
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn surrogates_and_overlongs_rejected() {
        for bad in [&[0xED, 0xA0, 0x80][..], &[0xC0, 0xAF], &[0xE0, 0x80, 0xAF], &[0xFF]] {
            assert!(!validate_in_pieces(bad, &[]), "{bad:?}");
            assert!(!validate_in_pieces(bad, &[1]), "{bad:?}");
        }
    }

    #[test]
    fn truncated_at_end_is_invalid() {
        assert!(!validate_in_pieces(&[b'a', 0xE2, 0x82], &[]));
    }

    proptest! {
        #[test]
        fn agrees_with_core_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            prop_assert_eq!(validate_in_pieces(&data, &cuts), str::from_utf8(&data).is_ok());
        }

        #[test]
        fn accepts_any_string_split_anywhere(
            s in "\\PC{0,40}",
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            prop_assert!(validate_in_pieces(s.as_bytes(), &cuts));
        }
    }
}
