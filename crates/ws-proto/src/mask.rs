//! Payload masking (RFC 6455 section 5.3).

/// XORs `buf` in place with the masking key `key`, as if `buf` began `offset` bytes into the
/// payload (so a payload can be unmasked in pieces as it arrives). Applying it twice restores
/// the data.
///
/// Works eight bytes at a time over the bulk of the buffer (which the compiler turns into
/// vector instructions), whatever the buffer's alignment and offset.
///
/// ```
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut data = *b"Hello";
/// ws_proto::apply_mask(&mut data, key, 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset & 3);
    // Short payloads (the common chat-sized case) skip the wide loop's setup.
    if buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        return;
    }
    let [a, b, c, d] = key;
    let k64 = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        // Four independent words per step so the loop vectorizes to 256-bit lanes.
        for word in chunk.chunks_exact_mut(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_ne_bytes(w) ^ k64).to_ne_bytes());
        }
    }
    // Every chunk above was a multiple of 4 bytes, so the key phase is unchanged.
    let rest = chunks.into_remainder();
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::apply_mask;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn every_length_alignment_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..200 {
                for offset in 0..8 {
                    let mut a = data[start..start + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, offset);
                    reference(&mut b, key, offset);
                    assert_eq!(a, b, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_bytewise_reference(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            key in any::<[u8; 4]>(),
            offset in 0usize..1024,
            start in 0usize..16,
        ) {
            let start = start.min(data.len());
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a[start..], key, offset);
            reference(&mut b[start..], key, offset);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn in_pieces_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            key in any::<[u8; 4]>(),
            cut in 0usize..512,
        ) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
