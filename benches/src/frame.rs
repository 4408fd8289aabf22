//! Frames on the wire (RFC 6455 §5.2): client frames built and masked once, and a streaming
//! reader of server frames that hands out payload bytes in place, without copying them.

/// Continuation frame opcode (§5.2).
pub const CONTINUATION: u8 = 0x0;
/// Text frame opcode.
pub const TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const BINARY: u8 = 0x2;
/// Close frame opcode.
pub const CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const PING: u8 = 0x9;
/// Pong frame opcode.
pub const PONG: u8 = 0xA;

/// The fixed masking key of every frame the load generator sends (§5.3 requires a mask on
/// client frames, not an unpredictable one for a benchmark on loopback).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A complete, masked, final client frame carrying `payload` (§5.2, §5.3).
///
/// ```
/// let frame = benches::client_frame(benches::TEXT, b"hi");
/// assert_eq!(frame.len(), 2 + 4 + 2);
/// assert_eq!(frame[0], 0x81);
/// assert_eq!(frame[1], 0x80 | 2);
/// ```
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    push_client_frame(&mut frame, opcode, payload);
    frame
}

/// Appends [`client_frame`]`(opcode, payload)` to `frame`.
pub fn push_client_frame(frame: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    frame.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    let start = frame.len();
    frame.extend_from_slice(payload);
    mask_in_place(&mut frame[start..], 0);
}

/// Masks (or unmasks) `bytes` in place with [`MASK`], as if they began `offset` bytes into a
/// payload: how a tag inside a prebuilt frame is rewritten without rebuilding the frame.
pub fn mask_in_place(bytes: &mut [u8], offset: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= MASK[(offset + i) % 4];
    }
}

/// The header of a frame from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// FIN bit: the last frame of its message.
    pub fin: bool,
    /// The opcode (low four bits of the first byte).
    pub opcode: u8,
    /// Payload length in bytes.
    pub len: u64,
}

/// What [`FrameReader::next`] found in its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A frame header, complete.
    Header(Header),
    /// Payload bytes of the current frame, in order, straight from the input.
    Payload(&'a [u8]),
    /// The current frame's payload is complete.
    End,
}

/// A frame the server must not send: masked (§5.1), or with RSV bits no extension agreed (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The server masked a frame.
    Masked,
    /// An RSV bit is set.
    Reserved,
}

/// A streaming reader of server frames: feed it whatever the socket gave, in any split, and it
/// returns headers, payload slices and frame ends. It keeps at most one partial header, never
/// the payload, so one read buffer can serve every connection.
#[derive(Debug, Default)]
pub struct FrameReader {
    head: [u8; 10],
    head_len: usize,
    /// Payload bytes left in the current frame, when one is open.
    remaining: Option<u64>,
}

impl FrameReader {
    /// A reader at a frame boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next item in `input`, and how many bytes of `input` it consumed. `Ok((n, None))`
    /// means the input is used up (`n` bytes of a partial header kept) and more is needed.
    /// Call again with the rest of the input until it returns `None`: a frame with an empty
    /// payload yields `End` without consuming anything.
    pub fn next<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Item<'a>>), FrameError> {
        if let Some(remaining) = self.remaining {
            if remaining == 0 {
                self.remaining = None;
                return Ok((0, Some(Item::End)));
            }
            if input.is_empty() {
                return Ok((0, None));
            }
            let n = remaining.min(input.len() as u64) as usize;
            self.remaining = Some(remaining - n as u64);
            return Ok((n, Some(Item::Payload(&input[..n]))));
        }
        let mut used = 0;
        loop {
            let need = match self.head_len {
                0 | 1 => 2,
                _ => match self.head[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                },
            };
            if self.head_len >= 2 {
                if self.head[1] & 0x80 != 0 {
                    return Err(FrameError::Masked);
                }
                if self.head[0] & 0x70 != 0 {
                    return Err(FrameError::Reserved);
                }
            }
            if self.head_len == need {
                let len = match need {
                    2 => u64::from(self.head[1] & 0x7f),
                    4 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                    _ => u64::from_be_bytes(self.head[2..10].try_into().expect("8 bytes")),
                };
                let header = Header { fin: self.head[0] & 0x80 != 0, opcode: self.head[0] & 0x0f, len };
                self.head_len = 0;
                self.remaining = Some(len);
                return Ok((used, Some(Item::Header(header))));
            }
            let Some(&b) = input.get(used) else { return Ok((used, None)) };
            self.head[self.head_len] = b;
            self.head_len += 1;
            used += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = client_frame(opcode, payload);
        // Strip the mask: unmask the payload, drop the key, clear the MASK bit.
        let key_at = f.len() - payload.len() - 4;
        let mut p = f[key_at + 4..].to_vec();
        mask_in_place(&mut p, 0);
        f.truncate(key_at);
        f[1] &= 0x7f;
        if !fin {
            f[0] &= 0x7f;
        }
        f.extend_from_slice(&p);
        f
    }

    /// Replays `wire` split into chunks of `step` bytes and records what the reader saw.
    fn replay(wire: &[u8], step: usize) -> Vec<(Header, Vec<u8>)> {
        let mut reader = FrameReader::new();
        let mut frames: Vec<(Header, Vec<u8>)> = Vec::new();
        let mut open = false;
        for chunk in wire.chunks(step) {
            let mut pos = 0;
            loop {
                let (n, item) = reader.next(&chunk[pos..]).unwrap();
                pos += n;
                match item {
                    None => break,
                    Some(Item::Header(h)) => {
                        assert!(!open);
                        open = true;
                        frames.push((h, Vec::new()));
                    }
                    Some(Item::Payload(p)) => frames.last_mut().unwrap().1.extend_from_slice(p),
                    Some(Item::End) => {
                        assert!(open);
                        open = false;
                    }
                }
            }
            assert_eq!(pos, chunk.len());
        }
        // An empty final frame's End comes on the next call.
        if open {
            assert_eq!(reader.next(&[]).unwrap(), (0, Some(Item::End)));
        }
        frames
    }

    #[test]
    fn every_split_yields_the_same_frames() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mid: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8).collect();
        let parts: [(bool, u8, &[u8]); 5] = [
            (true, TEXT, b"hello"),
            (false, TEXT, &mid),
            (true, CONTINUATION, b""),
            (true, PING, b"p"),
            (true, BINARY, &big),
        ];
        let mut wire = Vec::new();
        for (fin, op, p) in parts {
            wire.extend(server_frame(fin, op, p));
        }
        for step in [1, 2, 3, 7, 64, 1000, wire.len()] {
            let frames = replay(&wire, step);
            assert_eq!(frames.len(), parts.len(), "step {step}");
            for ((h, p), (fin, op, want)) in frames.iter().zip(parts) {
                assert_eq!((h.fin, h.opcode, h.len), (fin, op, want.len() as u64));
                assert_eq!(p.as_slice(), want);
            }
        }
    }

    #[test]
    fn client_frames_unmask_to_the_payload() {
        for len in [0, 1, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let frame = client_frame(TEXT, &payload);
            let mut body = frame[frame.len() - len..].to_vec();
            mask_in_place(&mut body, 0);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn masked_and_reserved_frames_are_refused() {
        assert_eq!(FrameReader::new().next(&[0x81, 0x82]), Err(FrameError::Masked));
        assert_eq!(FrameReader::new().next(&[0xC1, 0x02]), Err(FrameError::Reserved));
    }
}
