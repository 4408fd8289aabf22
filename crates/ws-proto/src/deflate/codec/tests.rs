//! Compressed messages through `Connection`: RFC 7692 section 7.2.3's examples, round trips
//! in both roles with and without context takeover, fragments, and each failure's close code.
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::*;

fn events(conn: &mut Connection, bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
    let mut input = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event(&mut input)? {
        out.push(event);
    }
    Ok(out)
}

fn text(s: &str) -> Event {
    Event::Text(Utf8Bytes::from(s))
}

fn pair(params: DeflateParams, config: &DeflateConfig) -> (Connection, Connection) {
    let mut c = Connection::new(Role::Client, Config::client(0x5eed));
    let mut s = Connection::new(Role::Server, Config::default());
    c.set_deflate(params, config);
    s.set_deflate(params, config);
    (c, s)
}

fn agreed(snct: bool, cnct: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        ..DeflateParams::default()
    }
}

fn every_size() -> DeflateConfig {
    DeflateConfig::default().min_size(0)
}

/// A server frame as the client's bytes: a first byte and an unmasked payload.
fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut v = vec![first, payload.len() as u8];
    v.extend_from_slice(payload);
    v
}

/// A masked client frame with any first byte.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9, 8, 7, 6];
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    header.encode(&mut out);
    out[0] = first;
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7692_7_2_3_examples() {
    // 7.2.3.1: "Hello" compressed, in one frame and in two.
    let mut c = Connection::new(Role::Client, Config::client(1));
    c.set_deflate(agreed(false, false), &every_size());
    let one = server_frame(0xc1, &HELLO);
    let two = [server_frame(0x41, &HELLO[..3]), server_frame(0x80, &HELLO[3..])].concat();
    assert_eq!(events(&mut c, &one).unwrap(), [text("Hello")]);
    // 7.2.3.2: the second "Hello" refers back into the first (context takeover).
    assert_eq!(
        events(&mut c, &server_frame(0xc1, &[0xf2, 0x00, 0x11, 0x00, 0x00])).unwrap(),
        [text("Hello")]
    );
    let mut c = Connection::new(Role::Client, Config::client(1));
    c.set_deflate(agreed(false, false), &every_size());
    assert_eq!(events(&mut c, &two).unwrap(), [text("Hello")]);
    // 7.2.3.3: a stored (uncompressed) block; 7.2.3.4: a final block (BFINAL), twice.
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let wire =
        [server_frame(0xc1, &stored), server_frame(0xc1, &bfinal), server_frame(0xc1, &bfinal)].concat();
    assert_eq!(events(&mut c, &wire).unwrap(), [text("Hello"), text("Hello"), text("Hello")]);

    // And this end's compressor writes the same bytes.
    let mut s = Connection::new(Role::Server, Config::default());
    s.set_deflate(agreed(true, false), &every_size());
    s.send_text("Hello").unwrap();
    assert_eq!(&s.take_output()[..], &one[..]);
}

#[test]
fn round_trips_both_roles_with_and_without_context_takeover() {
    let msg = r#"{"type":"message","room":"lobby","user":"alice","text":"hello everyone, the build passed","ts":1764633600000}"#;
    for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut c, mut s) = pair(agreed(snct, cnct), &every_size());
        let mut sizes = Vec::new();
        for round in 0..3 {
            s.send_text(msg).unwrap();
            s.send_binary(&[round; 300]).unwrap();
            let wire = s.take_output();
            assert_eq!(wire[0], 0xc1, "RSV1 on a compressed text message");
            sizes.push(wire.len());
            let got = events(&mut c, &wire).unwrap();
            assert_eq!(got, [text(msg), Event::Binary(Bytes::from(vec![round; 300]))]);
            c.send_text(msg).unwrap();
            let wire = c.take_output();
            assert_eq!(wire[0], 0xc1);
            assert_eq!(events(&mut s, &wire).unwrap(), [text(msg)]);
        }
        // With context takeover the repeated message shrinks to back references.
        if snct {
            assert_eq!(sizes[1], sizes[2], "{snct} {cnct}");
        } else {
            assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
        }
        assert_eq!(s.deflate(), Some(&agreed(snct, cnct)));
    }
}

#[test]
fn fragmented_compressed_messages_both_ways() {
    let (mut c, mut s) = pair(agreed(false, false), &every_size());
    let part = "ünïcödé text, repeated. ".repeat(20);
    // Split inside a character: compression works on bytes.
    let bytes = part.as_bytes();
    c.send_fragment(MessageKind::Text, &bytes[..1], false).unwrap();
    c.ping(b"between").unwrap();
    c.send_fragment(MessageKind::Text, &bytes[1..200], false).unwrap();
    c.send_fragment(MessageKind::Text, &bytes[200..], true).unwrap();
    let wire = c.take_output();
    assert_eq!(wire[0] & 0x70, 0x40, "RSV1 on the first frame");
    let got = events(&mut s, &wire).unwrap();
    assert_eq!(got, [Event::Ping(Bytes::from_static(b"between")), text(&part)]);
    assert_eq!(&s.take_output()[..2], [0x8a, 7], "the Pong is not compressed");
    // Server to client, and plain messages in between do not disturb the window.
    s.send_fragment(MessageKind::Binary, b"abcabcabc", false).unwrap();
    s.send_fragment(MessageKind::Binary, b"abcabc", true).unwrap();
    let out = s.take_output();
    assert_eq!(out[0], 0x42);
    s.send_encoded(&encode_server_frame(MessageKind::Text, b"plain")).unwrap();
    s.send_text("abcabcabc again").unwrap();
    let out = [out, s.take_output()].concat();
    let got = events(&mut c, &out).unwrap();
    assert_eq!(
        got,
        [Event::Binary(Bytes::from_static(b"abcabcabcabcabc")), text("plain"), text("abcabcabc again")]
    );
    // An empty last fragment (zlib writes nothing for a second flush in a row), and an
    // empty message.
    c.send_fragment(MessageKind::Binary, b"xyz", false).unwrap();
    c.send_fragment(MessageKind::Binary, b"", true).unwrap();
    c.send_binary(b"").unwrap();
    s.send_fragment(MessageKind::Binary, b"", false).unwrap();
    s.send_fragment(MessageKind::Binary, b"", true).unwrap();
    let got = events(&mut s, &c.take_output()).unwrap();
    assert_eq!(got, [Event::Binary(Bytes::from_static(b"xyz")), Event::Binary(Bytes::new())]);
    assert_eq!(events(&mut c, &s.take_output()).unwrap(), [Event::Binary(Bytes::new())]);
    // Each continuation is RSV-clear on the wire.
    let mut rest = &out[..];
    while let Ok(HeaderParse::Complete { header, header_len }) = FrameHeader::parse(rest) {
        if header.opcode == OpCode::Continuation {
            assert_eq!(header.rsv, 0);
        }
        rest = &rest[header_len + header.payload_len as usize..];
    }
}

#[test]
fn small_messages_and_control_frames_go_plain() {
    let (mut c, mut s) = pair(agreed(true, false), &DeflateConfig::default().min_size(10));
    s.send_text("short").unwrap();
    s.ping(b"ping ping ping ping").unwrap();
    s.close(Some((CloseCode::NORMAL, "bye bye bye bye bye"))).unwrap();
    let wire = s.take_output();
    assert_eq!(&wire[..7], [0x81, 0x05, b's', b'h', b'o', b'r', b't']);
    assert_eq!(&wire[7..9], [0x89, 19]);
    assert_eq!(wire[9 + 19], 0x88);
    let got = events(&mut c, &wire).unwrap();
    assert_eq!(got[0], text("short"));
    assert_eq!(got[1], Event::Ping(Bytes::from_static(b"ping ping ping ping")));
    // The client's auto-Pong is plain too.
    let pong = c.take_output();
    assert_eq!(pong[0], 0x8a);
}

#[test]
fn rsv1_where_it_may_not_be_fails_with_1002() {
    let compressed_hello = {
        let (mut c, _) = pair(agreed(false, false), &every_size());
        c.send_text("Hello").unwrap();
        c.take_output().to_vec()
    };
    let cases: Vec<(bool, Vec<u8>, ProtocolError)> = vec![
        // RSV1 without the extension.
        (false, compressed_hello.clone(), ProtocolError::ReservedBits(4)),
        // On a continuation frame.
        (true, [client_frame(0x02, b"a"), client_frame(0xc0, b"b")].concat(), ProtocolError::ReservedBits(4)),
        (
            true,
            [client_frame(0x42, &HELLO[..2]), client_frame(0xc0, &HELLO[2..])].concat(),
            ProtocolError::ReservedBits(4),
        ),
        // On control frames.
        (true, client_frame(0xc9, b"p"), ProtocolError::ReservedBits(4)),
        (true, client_frame(0xca, b"p"), ProtocolError::ReservedBits(4)),
        (true, client_frame(0xc8, &[0x03, 0xe8]), ProtocolError::ReservedBits(4)),
        // RSV2 and RSV3 stay reserved.
        (true, client_frame(0xa1, b"x"), ProtocolError::ReservedBits(2)),
        (true, client_frame(0xe1, b"x"), ProtocolError::ReservedBits(6)),
    ];
    for (negotiated, wire, want) in cases {
        let mut s = Connection::new(Role::Server, Config::default());
        if negotiated {
            s.set_deflate(agreed(false, false), &every_size());
        }
        assert_eq!(events(&mut s, &wire), Err(want), "{wire:x?}");
        assert_eq!(u16::from_be_bytes([s.output()[2], s.output()[3]]), 1002);
    }
}

#[test]
fn data_that_does_not_inflate_fails_with_1007() {
    for bad in [
        &[0xff, 0xff, 0xff][..],
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xee],
    ] {
        let mut s = Connection::new(Role::Server, Config::default());
        s.set_deflate(agreed(false, false), &every_size());
        assert_eq!(
            events(&mut s, &client_frame(0xc2, bad)),
            Err(ProtocolError::InvalidCompressedData),
            "{bad:x?}"
        );
        assert_eq!(u16::from_be_bytes([s.output()[2], s.output()[3]]), 1007);
        assert_eq!(s.state(), State::Closed);
    }
    // Text that inflates to invalid UTF-8 is 1007 as well.
    let (mut c, mut s) = pair(agreed(false, false), &every_size());
    c.send_binary(&[b'a', 0xff, b'b']).unwrap();
    let mut wire = c.take_output();
    wire[0] = 0xc1; // the same bytes, now claimed to be text
    assert_eq!(events(&mut s, &wire), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn zip_bomb_fails_with_1009() {
    // 10 MiB of zeros compress to about 10 KiB; the limit is 1 MiB after inflation.
    let mut c = Connection::new(Role::Client, Config::client(2));
    c.set_deflate(agreed(true, true), &every_size());
    c.send_binary(&vec![0; 10 << 20]).unwrap();
    let wire = c.take_output();
    assert!(wire.len() < 20 << 10, "{}", wire.len());
    let mut s = Connection::new(Role::Server, Config::default().max_message_size(1 << 20));
    s.set_deflate(agreed(true, true), &every_size());
    let err = events(&mut s, &wire).unwrap_err();
    assert!(matches!(err, ProtocolError::MessageTooBig(n) if n > 1 << 20), "{err:?}");
    assert_eq!(u16::from_be_bytes([s.output()[2], s.output()[3]]), 1009);
    // Exactly at the limit is fine.
    let mut c = Connection::new(Role::Client, Config::client(2));
    c.set_deflate(agreed(true, true), &every_size());
    c.send_binary(&vec![7; 1 << 20]).unwrap();
    let mut s = Connection::new(Role::Server, Config::default().max_message_size(1 << 20));
    s.set_deflate(agreed(true, true), &every_size());
    let got = events(&mut s, &c.take_output()).unwrap();
    assert!(matches!(&got[..], [Event::Binary(b)] if b.len() == 1 << 20));
}

#[test]
fn a_shared_compressed_frame_reaches_every_kind_of_peer() {
    let msg = r#"{"type":"message","room":"lobby","user":"bob","text":"shared once","ts":1}"#;
    let frame = encode_compressed_frame(MessageKind::Text, msg.as_bytes(), 15, 6);
    assert_eq!(frame[0], 0xc1);
    for params in [agreed(true, false), agreed(false, false)] {
        let (mut c, mut s) = pair(params, &every_size());
        // Context of its own first, then the shared frame, then its own again.
        s.send_text(msg).unwrap();
        s.check_send_compressed(15).unwrap();
        s.send_encoded(&frame).unwrap();
        s.send_text(msg).unwrap();
        let got = events(&mut c, &s.take_output()).unwrap();
        assert_eq!(got, [text(msg), text(msg), text(msg)]);
    }
    // A client that allowed only a smaller server window, or no compression at all, is refused.
    let narrow = DeflateParams { server_max_window_bits: 10, ..agreed(true, false) };
    let (_, mut s) = pair(narrow, &every_size());
    assert_eq!(s.check_send_compressed(15), Err(SendError::Compression));
    assert_eq!(s.check_send_compressed(10), Ok(()));
    let mut plain = Connection::new(Role::Server, Config::default());
    assert_eq!(plain.check_send_compressed(15), Err(SendError::Compression));
    // Window bits honoured: a 9-bit frame inflates on a client that allowed only 9 bits.
    let (mut c, _) = pair(DeflateParams { server_max_window_bits: 9, ..agreed(true, false) }, &every_size());
    let big: String = (0..200).map(|i| alloc::format!("{i:04} lorem ipsum ")).collect();
    let frame = encode_compressed_frame(MessageKind::Text, big.as_bytes(), 9, 9);
    assert_eq!(events(&mut c, &frame).unwrap(), [text(&big)]);
}

#[test]
fn idle_connections_keep_compressors_only_with_context_takeover() {
    let msg = [42u8; 500];
    for (snct, cnct) in [(true, true), (false, false)] {
        let (mut c, mut s) = pair(agreed(snct, cnct), &every_size());
        s.send_binary(&msg).unwrap();
        events(&mut c, &s.take_output()).unwrap();
        c.send_binary(&msg).unwrap();
        events(&mut s, &c.take_output()).unwrap();
        let state = s.deflate_state().unwrap();
        assert_eq!(state.compressor.is_some(), !snct);
        assert_eq!(state.inflater.is_some(), !cnct);
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Fragments(Vec<Vec<u8>>),
    Ping(Vec<u8>),
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    prop_oneof![
        "[a-z {}:,\"é€]{0,300}".prop_map(Msg::Text),
        proptest::collection::vec(0u8..4, 0..2000).prop_map(Msg::Binary),
        proptest::collection::vec(proptest::collection::vec(0u8..3, 0..100), 1..4).prop_map(Msg::Fragments),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Msg::Ping),
    ]
}

proptest! {
    #[test]
    fn compressed_round_trip_in_arbitrary_chunks(
        msgs in proptest::collection::vec(msg_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        from_client in any::<bool>(),
        snct in any::<bool>(),
        cnct in any::<bool>(),
        min_size in 0usize..100,
    ) {
        let (mut c, mut s) = pair(agreed(snct, cnct), &DeflateConfig::default().min_size(min_size));
        let (tx, rx) = if from_client { (&mut c, &mut s) } else { (&mut s, &mut c) };
        let mut expected = Vec::new();
        for m in &msgs {
            match m {
                Msg::Text(t) => { tx.send_text(t).unwrap(); expected.push(text(t)); }
                Msg::Binary(b) => { tx.send_binary(b).unwrap(); expected.push(Event::Binary(Bytes::from(b.clone()))); }
                Msg::Fragments(parts) => {
                    for (i, p) in parts.iter().enumerate() {
                        tx.send_fragment(MessageKind::Binary, p, i + 1 == parts.len()).unwrap();
                    }
                    expected.push(Event::Binary(Bytes::from(parts.concat())));
                }
                Msg::Ping(p) => { tx.ping(p).unwrap(); expected.push(Event::Ping(Bytes::from(p.clone()))); }
            }
        }
        let wire = tx.take_output();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([wire.len()]) {
            input.extend_from_slice(&wire[at..p]);
            at = p;
            while let Some(e) = rx.poll_event(&mut input).unwrap() {
                got.push(e);
            }
        }
        prop_assert_eq!(got, expected);
    }
}
