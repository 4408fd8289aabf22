//! `Utf8Validator` against `core::str::from_utf8`: fed the input in up to three pieces (cut
//! where the first two bytes say), it accepts exactly what `from_utf8` accepts, and fails on
//! the first piece after which the bytes so far cannot begin any valid UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    let [a, b, text @ ..] = data else { return };
    let mut cuts = [usize::from(*a) % (text.len() + 1), usize::from(*b) % (text.len() + 1)];
    cuts.sort_unstable();
    let mut v = Utf8Validator::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([text.len()]) {
        let fed = v.feed(&text[start..end]);
        // A prefix that is valid or cut inside a character is fine; anything else is not.
        let prefix_ok = match core::str::from_utf8(&text[..end]) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        };
        assert_eq!(fed.is_ok(), prefix_ok, "pieces {start}..{end} of {text:?}");
        if fed.is_err() {
            assert!(core::str::from_utf8(text).is_err());
            return;
        }
        start = end;
    }
    assert_eq!(v.finish().is_ok(), core::str::from_utf8(text).is_ok(), "{text:?}");
    // `finish` resets: the validator starts the next message clean.
    assert!(v.feed(b"ok").is_ok() && v.finish().is_ok());
});
