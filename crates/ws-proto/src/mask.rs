//! Payload masking (RFC 6455 section 5.3).

/// XORs `buf` in place with the masking key `key`, as if `buf` began `offset` bytes into the
/// payload (so a payload can be unmasked in pieces as it arrives). Applying it twice restores
/// the data.
///
/// Works eight bytes at a time over the bulk of the buffer (which the compiler turns into
/// vector instructions), whatever the buffer's alignment and offset. With the `std` feature
/// on x86-64, buffers of 256 bytes and more use the same code compiled for AVX2 when the CPU
/// has it (detected at run time): twice the vector width, as fast as `memcpy`.
///
/// ```
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut data = *b"Hello";
/// ws_proto::apply_mask(&mut data, key, 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if buf.len() >= 256 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the only requirement of calling a `#[target_feature(enable = "avx2")]`
        // function is that the CPU supports AVX2, which was detected just above.
        unsafe { apply_mask_avx2(buf, key, offset) };
        return;
    }
    apply_mask_portable(buf, key, offset)
}

/// The portable loop compiled with AVX2 enabled (256-bit vectors instead of 128-bit).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_portable(buf, key, offset)
}

/// The safe, portable masking loop (the reference the AVX2 build is tested against).
#[inline(always)]
pub(crate) fn apply_mask_portable(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as it applies from `buf[0]` on (indexing, not `rotate_left`, which calls libc).
    let o = offset & 3;
    let key = [key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]];
    // The shortest payloads skip the word setup.
    if buf.len() < 8 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        return;
    }
    let [a, b, c, d] = key;
    let k64 = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        // Four independent words per step: the compiler vectorizes them (128-bit lanes by
        // default, 256-bit in the AVX2 build).
        for word in chunk.chunks_exact_mut(8) {
            xor_word(word, k64);
        }
    }
    // Every chunk above was a multiple of 4 bytes, so the key phase is unchanged; so is it
    // after each word and half word below. What is left after 32-byte chunks (all of a
    // chat-sized payload) goes a word at a time, not a byte at a time.
    let mut words = chunks.into_remainder().chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, k64);
    }
    let mut rest = words.into_remainder();
    if rest.len() >= 4 {
        let (half, tail) = rest.split_at_mut(4);
        let mut w = [0u8; 4];
        w.copy_from_slice(half);
        half.copy_from_slice(&(u32::from_ne_bytes(w) ^ u32::from_ne_bytes(key)).to_ne_bytes());
        rest = tail;
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// XORs an 8-byte `word` with `k64` (unaligned, in native byte order like the key).
#[inline(always)]
fn xor_word(word: &mut [u8], k64: u64) {
    let mut w = [0u8; 8];
    w.copy_from_slice(word);
    word.copy_from_slice(&(u64::from_ne_bytes(w) ^ k64).to_ne_bytes());
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
        fn dispatched_path_agrees_with_portable(
            data in proptest::collection::vec(any::<u8>(), 200..5000),
            key in any::<[u8; 4]>(),
            offset in 0usize..16,
            start in 0usize..33,
        ) {
            // Lengths of 256 and more take the AVX2 build on CPUs that have it.
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a[start..], key, offset);
            super::apply_mask_portable(&mut b[start..], key, offset);
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
