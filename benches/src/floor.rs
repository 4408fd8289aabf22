//! The floor server's WebSocket part (`floor`, benches/src/bin/floor.rs, is its epoll loop):
//! the opening handshake, and answering whole frames in place in a receive buffer. Only what
//! `wsload`'s echo load needs: no UTF-8 validation, no fragmented messages, no control frames
//! but Close and Ping.

use std::os::fd::RawFd;

/// Sets `TCP_NODELAY` on an accepted socket, as every server measured beside the floor does.
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is an open socket and the option value is a live c_int of the given size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The connection ends: the peer closed (its Close is answered), failed, or sent what the floor
/// server does not take.
#[derive(Debug, PartialEq, Eq)]
pub struct End;

/// Checks the opening handshake at the start of `received` and writes its answer to `out`:
/// `Ok(Some(n))` when the request is whole (its `n` bytes are done with), `Ok(None)` while
/// more is to come.
pub fn answer_handshake(received: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, End> {
    let mut headers = [ws_proto::httparse::EMPTY_HEADER; 32];
    let mut request = ws_proto::httparse::Request::new(&mut headers);
    let head = match request.parse(received) {
        Ok(ws_proto::httparse::Status::Complete(head)) => head,
        Ok(ws_proto::httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(End),
    };
    let key = ws_proto::validate_request(&request).map_err(|_| End)?.key;
    ws_proto::write_accept_response(out, key, None, &[]);
    Ok(Some(head))
}

/// Answers the whole frames in `buf[pos..]` in place and returns where the first incomplete
/// frame starts. Each answer is pushed to `pieces` as the range of `buf` it fills: the
/// payload is unmasked where it was received and the answer's header written over the mask
/// key before it (so answers are in order, 4 bytes apart for short frames). A frame longer
/// than `max_frame` (with its header), an unmasked one, a continuation or a reserved opcode
/// ends the connection; a Close is answered with an empty Close, then ends it.
pub fn answer_frames(
    buf: &mut [u8],
    mut pos: usize,
    max_frame: usize,
    pieces: &mut Vec<(usize, usize)>,
) -> (usize, Result<(), End>) {
    loop {
        let rest = &mut buf[pos..];
        if rest.len() < 2 {
            return (pos, Ok(()));
        }
        let (first, masked) = (rest[0], rest[1] & 0x80 != 0);
        let (len, header) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 8),
            126 => return (pos, Ok(())),
            127 => return (pos, Err(End)), // longer than the floor's buffer
            n => (usize::from(n), 6),
        };
        if !masked || header + len > max_frame {
            return (pos, Err(End));
        }
        if rest.len() < header + len {
            return (pos, Ok(())); // the rest of the frame is still coming
        }
        let key = [rest[header - 4], rest[header - 3], rest[header - 2], rest[header - 1]];
        ws_proto::apply_mask(&mut rest[header..header + len], key, 0);
        let payload = pos + header;
        pos = payload + len;
        let first = match first & 0x0f {
            0x8 => {
                // Close: answered with an empty Close, written over the frame's header.
                buf[payload - header..payload - header + 2].copy_from_slice(&[0x88, 0]);
                pieces.push((payload - header, payload - header + 2));
                return (pos, Err(End));
            }
            0x9 => 0x8a,                 // a Ping's Pong
            0xa => continue,             // a Pong: nothing to answer
            0x1 | 0x2 => first,          // text or binary, echoed with its FIN bit
            _ => return (pos, Err(End)), // continuations and reserved opcodes
        };
        // The answer's header (2 or 4 bytes) goes over the mask key, just before the payload.
        let start = if len < 126 {
            buf[payload - 2..payload].copy_from_slice(&[first, len as u8]);
            payload - 2
        } else {
            let [hi, lo] = (len as u16).to_be_bytes();
            buf[payload - 4..payload].copy_from_slice(&[first, 126, hi, lo]);
            payload - 4
        };
        pieces.push((start, pos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PING, TEXT, client_frame};

    #[test]
    fn whole_frames_are_answered_in_place_and_a_partial_one_waits() {
        let mut buf = client_frame(TEXT, b"hello");
        buf.extend(client_frame(PING, b"p"));
        let whole = buf.len();
        let next = client_frame(TEXT, &[b'x'; 200]);
        buf.extend_from_slice(&next[..next.len() - 1]);
        let mut pieces = Vec::new();
        let (rest, result) = answer_frames(&mut buf, 0, 1024, &mut pieces);
        assert_eq!((rest, result), (whole, Ok(())));
        let answers: Vec<&[u8]> = pieces.iter().map(|&(s, e)| &buf[s..e]).collect();
        assert_eq!(answers, [&b"\x81\x05hello"[..], b"\x8a\x01p"]);
    }

    #[test]
    fn an_unmasked_or_oversized_frame_ends_the_connection() {
        let mut pieces = Vec::new();
        assert_eq!(answer_frames(&mut b"\x81\x01a".to_vec(), 0, 1024, &mut pieces).1, Err(End));
        let mut long = client_frame(TEXT, &[b'x'; 300]);
        assert_eq!(answer_frames(&mut long, 0, 200, &mut pieces).1, Err(End));
        assert!(pieces.is_empty());
    }

    #[test]
    fn a_handshake_is_answered_once_it_is_whole() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut out = Vec::new();
        assert_eq!(answer_handshake(&request[..20], &mut out), Ok(None));
        assert_eq!(answer_handshake(request, &mut out), Ok(Some(request.len())));
        let answer = String::from_utf8(out).unwrap();
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert!(answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
        assert_eq!(answer_handshake(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut Vec::new()), Err(End));
    }
}
