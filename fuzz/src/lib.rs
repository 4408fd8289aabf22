//! The driver shared by the `server_connection` and `client_connection` fuzz targets: a
//! `Connection` with small limits fed arbitrary bytes in chunks, with every event and every
//! byte it queues for sending checked against what RFC 6455 says it must be.

use bytes::BytesMut;
use ws_proto::{
    Config, Connection, Event, FrameHeader, HeaderParse, MAX_CONTROL_PAYLOAD, OpCode, Role, State, apply_mask,
};

const MAX_FRAME: usize = 4096;
const MAX_MESSAGE: usize = 8192;
/// The output buffer must stay bounded whatever the peer sends.
const MAX_OUTPUT: usize = 64 << 10;

/// Feeds `data[1..]` to a fresh connection of `role` and polls after each chunk until
/// `Ok(None)` or an error. `data[0]` picks the run: bit 7 turns automatic pongs off, bit 6
/// drains the output (and calls `shrink_idle`) after each chunk, and the low six bits give the
/// largest chunk size (0: everything at once; otherwise sizes vary from 1 up to it).
pub fn drive(role: Role, data: &[u8]) {
    let Some((&control, mut wire)) = data.split_first() else { return };
    let config =
        Config::client(0x5eed).max_frame_size(MAX_FRAME).max_message_size(MAX_MESSAGE).auto_pong(control & 0x80 == 0);
    let drain = control & 0x40 != 0;
    let max_chunk = usize::from(control & 0x3F);
    let mut rng = u32::from(control) | 0x9E37_0000;
    let mut conn = Connection::new(role, config);
    let mut input = BytesMut::new();
    let mut closed = false;
    while !wire.is_empty() {
        let size = if max_chunk == 0 {
            wire.len()
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            1 + rng as usize % max_chunk
        };
        let (chunk, rest) = wire.split_at(size.min(wire.len()));
        wire = rest;
        input.extend_from_slice(chunk);
        loop {
            match poll_once(&mut conn, &mut input) {
                Step::Event => {}
                Step::Wait => break,
                Step::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            // A closed or failed connection reads nothing more and sends nothing more.
            let before = conn.output().len();
            assert_eq!(conn.poll_event(&mut input), Ok(None));
            assert_eq!(conn.output().len(), before);
            assert_eq!(conn.state(), State::Closed);
        }
        assert!(conn.output().len() < MAX_OUTPUT, "output grew to {}", conn.output().len());
        if drain {
            conn.take_output();
            conn.shrink_idle();
        }
    }
}

/// What one poll ended with.
enum Step {
    /// An event other than Close: poll again.
    Event,
    /// `Ok(None)`: more bytes are needed.
    Wait,
    /// A Close was received or the connection failed.
    Closed,
}

/// Polls once and checks the event (or error) against what the connection queued for the peer.
fn poll_once(conn: &mut Connection, input: &mut BytesMut) -> Step {
    let before = conn.output().len();
    let was_closing = conn.close_sent();
    // What an adapter is told before polling, to decide whether to batch its writes.
    let complete = conn.has_complete_frame(input);
    let input_len = input.len();
    let result = conn.poll_event(input);
    let written = conn.output()[before..].to_vec();
    let role = conn.role();
    match result {
        Ok(None) => {
            assert!(written.is_empty(), "Ok(None) queued {written:?}");
            // A complete frame is always consumed (a fragment without an event of its own).
            assert!(!complete || input.len() < input_len, "has_complete_frame but nothing read");
            Step::Wait
        }
        Ok(Some(event)) => {
            assert!(complete, "an event from input has_complete_frame called incomplete");
            match &event {
                Event::Text(text) => {
                    // `Utf8Bytes::as_str` trusts the connection's validation without checking.
                    assert!(core::str::from_utf8(text.as_bytes()).is_ok(), "invalid UTF-8 in {text:?}");
                    assert_eq!(text.as_str().as_bytes(), &text.as_bytes()[..]);
                    assert!(text.len() <= MAX_MESSAGE);
                    assert!(written.is_empty());
                }
                Event::Binary(data) => {
                    assert!(data.len() <= MAX_MESSAGE);
                    assert!(written.is_empty());
                }
                Event::Ping(payload) => {
                    assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                    if conn.config().auto_pong && !was_closing {
                        assert_eq!(single_frame(role, &written), (OpCode::Pong, payload.to_vec()));
                    } else {
                        assert!(written.is_empty());
                    }
                }
                Event::Pong(payload) => {
                    assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                    assert!(written.is_empty());
                }
                Event::Close(frame) => {
                    assert_eq!(conn.state(), State::Closed);
                    if let Some(frame) = frame {
                        assert!(frame.code.is_valid_on_wire());
                        assert!(frame.reason.len() <= MAX_CONTROL_PAYLOAD - 2);
                    }
                    if was_closing {
                        assert!(written.is_empty(), "a second Close was sent");
                    } else {
                        // The echo carries the status code (section 5.5.1) and the reason.
                        let mut echo = Vec::new();
                        if let Some(f) = frame {
                            echo.extend_from_slice(&f.code.0.to_be_bytes());
                            echo.extend_from_slice(f.reason.as_bytes());
                        }
                        assert_eq!(single_frame(role, &written), (OpCode::Close, echo));
                    }
                    return Step::Closed;
                }
            }
            Step::Event
        }
        Err(error) => {
            assert_eq!(conn.state(), State::Closed);
            assert_eq!(conn.failure(), Some(error));
            if was_closing {
                assert!(written.is_empty(), "a second Close was sent");
            } else {
                let (opcode, payload) = single_frame(role, &written);
                assert_eq!(opcode, OpCode::Close);
                assert!(payload.len() >= 2 && payload.len() <= MAX_CONTROL_PAYLOAD);
                assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), error.close_code().0);
                assert!(core::str::from_utf8(&payload[2..]).is_ok());
            }
            Step::Closed
        }
    }
}

/// Parses `bytes` as exactly one final frame sent by `sender` and returns its opcode and
/// unmasked payload.
fn single_frame(sender: Role, bytes: &[u8]) -> (OpCode, Vec<u8>) {
    let Ok(HeaderParse::Complete { header, header_len }) = FrameHeader::parse(bytes) else {
        panic!("not a frame: {bytes:?}");
    };
    assert!(header.fin && header.rsv == 0, "{header:?}");
    assert_eq!(header.mask.is_some(), sender == Role::Client, "masking of {header:?}");
    assert_eq!(header.payload_len, (bytes.len() - header_len) as u64, "not exactly one frame");
    let mut payload = bytes[header_len..].to_vec();
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    (header.opcode, payload)
}
