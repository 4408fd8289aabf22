//! `FrameHeader::parse` on arbitrary bytes: never panics, a complete header re-encodes (in the
//! minimal length form) to bytes that parse to the same header, and `Incomplete(n)` never
//! asks for more than the longest header.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::{FrameHeader, HeaderParse, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    match FrameHeader::parse(data) {
        Ok(HeaderParse::Complete { header, header_len }) => {
            assert!(header_len <= MAX_HEADER_LEN && header_len <= data.len());
            // Every shorter prefix is incomplete, and asks for no more than the header needs.
            for cut in 0..header_len {
                match FrameHeader::parse(&data[..cut]) {
                    Ok(HeaderParse::Incomplete(n)) => assert!(n >= 1 && cut + n <= header_len),
                    other => panic!("prefix of {cut} bytes gave {other:?}"),
                }
            }
            let mut out = Vec::new();
            header.encode(&mut out);
            assert_eq!(out.len(), header.encoded_len());
            // Parse accepts non-minimal length forms; encode is minimal, so never longer.
            assert!(out.len() <= header_len);
            match FrameHeader::parse(&out) {
                Ok(HeaderParse::Complete { header: again, header_len: n }) => {
                    assert_eq!(again, header);
                    assert_eq!(n, out.len());
                }
                other => panic!("re-encoded {header:?} as {out:?}, which parsed to {other:?}"),
            }
        }
        Ok(HeaderParse::Incomplete(n)) => assert!(n >= 1 && data.len() + n <= MAX_HEADER_LEN),
        Err(_) => {}
    }
});
