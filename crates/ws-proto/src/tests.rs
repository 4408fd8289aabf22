//! Connection-level tests: RFC 6455 section 5.7 examples, protocol errors with their close
//! codes, the closing handshake, and client/server round trips split at arbitrary points.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};
use proptest::prelude::*;

use crate::*;

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn client() -> Connection {
    Connection::new(Role::Client, Config::client(0x5eed))
}

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

const MASKED_HELLO: [u8; 11] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];

// RFC 6455 section 5.7.
#[test]
fn rfc_5_7_unmasked_hello_to_client() {
    let mut c = client();
    assert_eq!(events(&mut c, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap(), [text("Hello")]);
    let mut s = server();
    s.send_text("Hello").unwrap();
    assert_eq!(&s.take_output()[..], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn rfc_5_7_masked_hello_to_server() {
    let mut s = server();
    assert_eq!(events(&mut s, &MASKED_HELLO).unwrap(), [text("Hello")]);
}

#[test]
fn rfc_5_7_fragmented_hel_lo() {
    let mut c = client();
    let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(events(&mut c, &wire).unwrap(), [text("Hello")]);
    let mut s = server();
    s.send_fragment(MessageKind::Text, b"Hel", false).unwrap();
    s.send_fragment(MessageKind::Text, b"lo", true).unwrap();
    assert_eq!(&s.take_output()[..], wire);
}

#[test]
fn rfc_5_7_ping_and_pong() {
    // Unmasked Ping "Hello" to a client; its auto-Pong is masked.
    let mut c = client();
    let got = events(&mut c, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
    assert_eq!(got, [Event::Ping(Bytes::from_static(b"Hello"))]);
    let pong = c.take_output();
    assert_eq!(pong[0], 0x8a);
    assert_eq!(pong[1], 0x85);
    let mut s = server();
    assert_eq!(events(&mut s, &pong).unwrap(), [Event::Pong(Bytes::from_static(b"Hello"))]);
    // The RFC's masked Pong "Hello" to a server.
    let mut s = server();
    let masked_pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(events(&mut s, &masked_pong).unwrap(), [Event::Pong(Bytes::from_static(b"Hello"))]);
}

#[test]
fn rfc_5_7_256_bytes_and_64_kib() {
    let mut s = server();
    s.send_binary(&[0xAB; 256]).unwrap();
    let out = s.take_output();
    assert_eq!(&out[..4], [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(out.len(), 4 + 256);
    let mut c = client();
    assert_eq!(events(&mut c, &out).unwrap(), [Event::Binary(Bytes::from(vec![0xAB; 256]))]);

    s.send_binary(&vec![0xCD; 65536]).unwrap();
    let out = s.take_output();
    assert_eq!(&out[..10], [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
    assert_eq!(events(&mut c, &out).unwrap(), [Event::Binary(Bytes::from(vec![0xCD; 65536]))]);
}

#[test]
fn header_parse_never_panics_and_reports_need() {
    assert_eq!(FrameHeader::parse(&[]), Ok(HeaderParse::Incomplete(2)));
    assert_eq!(FrameHeader::parse(&[0x82, 0xFF]), Ok(HeaderParse::Incomplete(12)));
    assert_eq!(FrameHeader::parse(&[0x83, 0x00]), Err(HeaderError::ReservedOpCode(3)));
    assert_eq!(
        FrameHeader::parse(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        Err(HeaderError::LengthOverflow)
    );
    // Non-minimal length forms are accepted on receive.
    let parsed = FrameHeader::parse(&[0x82, 0x7E, 0x00, 0x05]).unwrap();
    assert!(matches!(parsed, HeaderParse::Complete { header, header_len: 4 } if header.payload_len == 5));
}

#[test]
fn unmasked_client_frame_fails_with_1002() {
    let mut s = server();
    let err = events(&mut s, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap_err();
    assert_eq!(err, ProtocolError::UnmaskedClientFrame);
    assert_eq!(s.state(), State::Closed);
    let close = s.take_output();
    assert_eq!(&close[..4], [0x88, close[1], 0x03, 0xEA]);
    // Nothing more is parsed or sent after a failure.
    assert!(events(&mut s, &MASKED_HELLO).unwrap().is_empty());
    assert_eq!(s.send_text("x"), Err(SendError::Closed));
}

#[test]
fn masked_server_frame_fails_a_client() {
    let mut c = client();
    assert_eq!(events(&mut c, &MASKED_HELLO).unwrap_err(), ProtocolError::MaskedServerFrame);
}

fn client_frames(build: impl FnOnce(&mut Connection)) -> BytesMut {
    let mut c = client();
    build(&mut c);
    c.take_output()
}

fn raw_client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let key = [1, 2, 3, 4];
    let header = FrameHeader {
        fin: first & 0x80 != 0,
        rsv: (first >> 4) & 7,
        opcode: OpCode::Binary,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    out.clear();
    header.encode(&mut out);
    out[0] = first;
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

#[test]
fn each_violation_has_its_close_code() {
    let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
        (raw_client_frame(0xC2, b"x"), ProtocolError::ReservedBits(4)),
        (raw_client_frame(0x09, b""), ProtocolError::FragmentedControlFrame),
        (raw_client_frame(0x89, &[0; 126]), ProtocolError::ControlFrameTooLong(126)),
        (raw_client_frame(0x80, b"x"), ProtocolError::UnexpectedContinuation),
        (
            [raw_client_frame(0x01, b"a"), raw_client_frame(0x81, b"b")].concat(),
            ProtocolError::ExpectedContinuation,
        ),
        (raw_client_frame(0x88, &[0x03]), ProtocolError::InvalidClosePayload),
        (raw_client_frame(0x88, &[0x03, 0xED]), ProtocolError::InvalidCloseCode(1005)),
        (raw_client_frame(0x88, &[0x03, 0xE8, 0xC0]), ProtocolError::InvalidUtf8),
        (raw_client_frame(0x81, &[0xCE, 0xBA, 0xFF]), ProtocolError::InvalidUtf8),
    ];
    for (wire, expected) in cases {
        let mut s = server();
        assert_eq!(events(&mut s, &wire), Err(expected), "{expected:?}");
        let close = s.take_output();
        let code = u16::from_be_bytes([close[2], close[3]]);
        assert_eq!(code, expected.close_code().0, "{expected:?}");
    }
}

#[test]
fn invalid_utf8_fails_before_the_frame_completes() {
    // A 1000-byte text frame whose third byte is invalid: only its first 10 bytes arrive.
    let mut payload = vec![b'a'; 1000];
    payload[2] = 0xFF;
    let wire = raw_client_frame(0x81, &payload);
    let mut s = server();
    assert_eq!(events(&mut s, &wire[..8 + 10]), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn limits_answered_with_1009() {
    let config = Config::default().max_frame_size(100).max_message_size(150);
    let mut s = Connection::new(Role::Server, config.clone());
    let wire = raw_client_frame(0x82, &[0; 101]);
    // Refused from the header alone, before the payload arrives.
    assert_eq!(events(&mut s, &wire[..8]), Err(ProtocolError::FrameTooBig(101)));
    let mut s = Connection::new(Role::Server, config);
    let wire = [raw_client_frame(0x02, &[0; 100]), raw_client_frame(0x80, &[0; 51])].concat();
    assert_eq!(events(&mut s, &wire), Err(ProtocolError::MessageTooBig(151)));
    assert_eq!(u16::from_be_bytes([s.output()[2], s.output()[3]]), 1009);
}

#[test]
fn control_frames_interleaved_with_fragments() {
    let wire = client_frames(|c| {
        c.send_fragment(MessageKind::Text, "Hé".as_bytes(), false).unwrap();
        c.ping(b"p").unwrap();
        c.send_fragment(MessageKind::Text, b"llo", true).unwrap();
    });
    let mut s = server();
    let got = events(&mut s, &wire).unwrap();
    assert_eq!(got, [Event::Ping(Bytes::from_static(b"p")), text("Héllo")]);
    assert_eq!(&s.take_output()[..], [0x8A, 0x01, b'p']);
}

#[test]
fn code_point_split_across_fragments() {
    let euro = "€".as_bytes();
    let wire = client_frames(|c| {
        c.send_fragment(MessageKind::Text, &euro[..1], false).unwrap();
        c.send_fragment(MessageKind::Text, &euro[1..], true).unwrap();
    });
    assert_eq!(events(&mut server(), &wire).unwrap(), [text("€")]);
    let truncated = client_frames(|c| {
        c.send_fragment(MessageKind::Text, &euro[..2], false).unwrap();
        c.send_fragment(MessageKind::Text, b"", true).unwrap();
    });
    assert_eq!(events(&mut server(), &truncated), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn closing_handshake_initiated_by_peer() {
    let wire = client_frames(|c| c.close(Some((CloseCode(4001), "bye"))).unwrap());
    let mut s = server();
    let got = events(&mut s, &wire).unwrap();
    assert_eq!(got, [Event::Close(Some(CloseFrame { code: CloseCode(4001), reason: "bye".into() }))]);
    assert_eq!(s.state(), State::Closed);
    assert_eq!(&s.take_output()[..], [0x88, 0x05, 0x0F, 0xA1, b'b', b'y', b'e']);
    assert_eq!(s.send_text("late"), Err(SendError::Closed));
}

#[test]
fn closing_handshake_initiated_here() {
    let mut s = server();
    s.close(Some((CloseCode::NORMAL, "done"))).unwrap();
    assert_eq!(s.state(), State::Closing);
    assert_eq!(s.send_binary(b"x"), Err(SendError::Closed));
    assert_eq!(s.close(None), Err(SendError::Closed));
    // Data still arriving before the peer's Close is delivered.
    let wire = client_frames(|c| {
        c.send_text("in flight").unwrap();
        c.close(Some((CloseCode::NORMAL, ""))).unwrap();
    });
    s.take_output();
    let got = events(&mut s, &wire).unwrap();
    assert_eq!(got[0], text("in flight"));
    assert!(matches!(got[1], Event::Close(Some(ref f)) if f.code == CloseCode::NORMAL));
    assert_eq!(s.state(), State::Closed);
    assert!(s.output().is_empty(), "no second Close is sent");
}

#[test]
fn empty_close_echoed_empty_and_bad_codes_refused() {
    let wire = client_frames(|c| c.close(None).unwrap());
    let mut s = server();
    assert_eq!(events(&mut s, &wire).unwrap(), [Event::Close(None)]);
    assert_eq!(&s.take_output()[..], [0x88, 0x00]);
    assert_eq!(server().close(Some((CloseCode(1005), ""))), Err(SendError::InvalidCloseCode(1005)));
}

#[test]
fn unfragmented_message_is_not_copied() {
    let mut input = BytesMut::from(&raw_client_frame(0x82, &[7; 64])[..]);
    let base = input.as_ptr() as usize;
    let mut s = server();
    match s.poll_event(&mut input).unwrap() {
        Some(Event::Binary(b)) => assert_eq!(b.as_ptr() as usize, base + 6),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_only_then_payload_equals_a_whole_frame() {
    let payload = vec![b'x'; 300];
    let mut whole = server();
    whole.send_text(core::str::from_utf8(&payload).unwrap()).unwrap();
    let mut split = server();
    split.send_header_only(MessageKind::Text, payload.len()).unwrap();
    let mut wire = split.take_output().to_vec();
    wire.extend_from_slice(&payload);
    assert_eq!(wire, &whole.take_output()[..]);
    assert_eq!(client().send_header_only(MessageKind::Text, 3), Err(SendError::FragmentOrder));
}

#[test]
fn broadcast_frame_encoded_once() {
    let frame = encode_server_frame(MessageKind::Text, b"hi all");
    let mut c = client();
    assert_eq!(events(&mut c, &frame).unwrap(), [text("hi all")]);
    let mut s = server();
    s.send_encoded(&frame).unwrap();
    assert_eq!(&s.take_output()[..], &frame[..]);
    assert_eq!(client().send_encoded(&frame), Err(SendError::FragmentOrder));
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    /// A text message sent in the given number of fragments.
    Fragmented(String, usize),
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    prop_oneof![
        "\\PC{0,50}".prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Msg::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Msg::Ping),
        ("\\PC{0,50}", 1usize..5).prop_map(|(s, n)| Msg::Fragmented(s, n)),
        proptest::collection::vec(any::<u8>(), 65530..65545).prop_map(Msg::Binary),
    ]
}

fn send(conn: &mut Connection, msg: &Msg) {
    match msg {
        Msg::Text(s) => conn.send_text(s).unwrap(),
        Msg::Binary(b) => conn.send_binary(b).unwrap(),
        Msg::Ping(p) => conn.ping(p).unwrap(),
        Msg::Fragmented(s, n) => {
            // Split at byte positions, possibly inside characters.
            let bytes = s.as_bytes();
            let step = bytes.len().div_ceil(*n).max(1);
            let chunks: Vec<&[u8]> =
                if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(step).collect() };
            for (i, chunk) in chunks.iter().enumerate() {
                conn.send_fragment(MessageKind::Text, chunk, i + 1 == chunks.len()).unwrap();
            }
        }
    }
}

fn expected(msg: &Msg) -> Event {
    match msg {
        Msg::Text(s) | Msg::Fragmented(s, _) => Event::Text(Utf8Bytes::from(s.as_str())),
        Msg::Binary(b) => Event::Binary(Bytes::from(b.clone())),
        Msg::Ping(p) => Event::Ping(Bytes::from(p.clone())),
    }
}

fn round_trip(from: Role, msgs: &[Msg], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut sender = Connection::new(from, Config::client(99));
    let mut receiver = Connection::new(from.peer(), Config::default());
    for m in msgs {
        send(&mut sender, m);
    }
    let wire = sender.take_output();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    let mut input = BytesMut::new();
    let mut got = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(core::iter::once(wire.len())) {
        input.extend_from_slice(&wire[start..cut]);
        start = cut;
        while let Some(e) =
            receiver.poll_event(&mut input).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?
        {
            got.push(e);
        }
    }
    let want: Vec<Event> = msgs.iter().map(expected).collect();
    prop_assert_eq!(got, want);
    prop_assert!(input.is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn client_to_server_in_arbitrary_chunks(
        msgs in proptest::collection::vec(msg_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        round_trip(Role::Client, &msgs, &cuts)?;
    }

    #[test]
    fn server_to_client_in_arbitrary_chunks(
        msgs in proptest::collection::vec(msg_strategy(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        round_trip(Role::Server, &msgs, &cuts)?;
    }

    #[test]
    fn server_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut s = Connection::new(Role::Server, Config::default().max_frame_size(200).max_message_size(300));
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut input = BytesMut::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain(core::iter::once(data.len())) {
            input.extend_from_slice(&data[start..cut]);
            start = cut;
            while let Ok(Some(_)) = s.poll_event(&mut input) {}
        }
    }
}

#[test]
fn a_burst_of_small_frames_after_an_idle_spell_fills_one_buffer() {
    let mut s = server();
    s.shrink_idle();
    assert_eq!(s.output().capacity(), 0, "an idle connection holds no output buffer");
    s.send_text("a reply of twenty b.").unwrap();
    let first = s.output().as_ptr();
    assert!(s.output().capacity() >= 512, "capacity {}", s.output().capacity());
    for _ in 0..9 {
        s.send_text("a reply of twenty b.").unwrap();
    }
    assert_eq!(s.output().as_ptr(), first, "ten 22-byte frames grew the buffer");
    assert_eq!(s.output_len(), 10 * 22);
    s.output().clear();
    s.shrink_idle();
    assert_eq!(s.output().capacity(), 0, "released again once empty");
}

#[test]
fn only_the_latest_ping_is_answered_while_the_output_is_long() {
    let mut s = server();
    // Output nobody writes out: a long message, then a flood of pings.
    s.send_binary(&vec![7u8; PONG_QUEUE_MAX + 1]).unwrap();
    let before = s.output_len();
    let mut wire = Vec::new();
    for i in 0..1000u32 {
        wire.extend_from_slice(&client_frames(|c| c.ping(&i.to_be_bytes()).unwrap()));
    }
    assert_eq!(events(&mut s, &wire).unwrap().len(), 1000, "every ping is reported");
    // One held-back Pong, whatever the number of pings: 2 header bytes + 4 payload bytes.
    assert_eq!(s.output_len(), before + 6);
    assert!(s.pong_pending());
    // Once the output is written, the held Pong (of the last ping) joins it.
    let len = s.output().len();
    assert_eq!(len, before, "the Pong waits while the output is long");
    s.output().advance(len);
    let out = s.take_output();
    assert_eq!(&out[..], [0x8a, 0x04, 0, 0, 3, 231]);
    assert!(!s.pong_pending());
    // With a short output every ping is answered at once.
    let few: Vec<u8> = (0..3u8).flat_map(|i| client_frames(|c| c.ping(&[i]).unwrap()).to_vec()).collect();
    events(&mut s, &few).unwrap();
    assert_eq!(&s.take_output()[..], [0x8a, 1, 0, 0x8a, 1, 1, 0x8a, 1, 2]);
}

#[test]
fn a_held_pong_is_dropped_by_close() {
    let mut s = server();
    s.send_binary(&vec![0u8; PONG_QUEUE_MAX + 1]).unwrap();
    events(&mut s, &client_frames(|c| c.ping(b"x").unwrap())).unwrap();
    assert!(s.pong_pending());
    s.close(Some((CloseCode::NORMAL, ""))).unwrap();
    assert!(!s.pong_pending());
    let out = s.take_output();
    assert_eq!(&out[out.len() - 4..], [0x88, 2, 0x03, 0xe8], "the Close ends the output, no Pong after it");
}
