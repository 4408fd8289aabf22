use super::*;

const ID: &str = "000102030405060708090a0b0c0d0e0f";

fn id() -> WebSocketId {
    ID.parse().unwrap()
}

fn request(op: Op) -> Header {
    Header::Request { req: 7, from: "n1".into(), id: id(), op }
}

fn reply(answer: Answer) -> Header {
    Header::Reply { req: 7, answer }
}

fn presence(change: Change) -> Header {
    Header::Presence { node: "n1".into(), room: "lobby".into(), id: id(), change }
}

/// `raw` does not decode; the error says why.
fn rejected(raw: &[u8]) -> String {
    match decode(raw) {
        Ok((h, _)) => panic!("{} decoded as {h:?}", String::from_utf8_lossy(raw)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_kind_round_trips() {
    // Binary-safe: the payload holds a newline, a zero and a byte that is not UTF-8.
    let payload: &[u8] = &[0, 10, 255, b'\n', 7];
    let label = || "Alice \"A\"\nB".to_string();
    let cases = [
        (Header::Room { from: "n1".into() }, payload),
        (presence(Change::Join { label: label(), since_ms: 1_700_000_000_000 }), &[][..]),
        (presence(Change::Label { label: label(), since_ms: 1 }), &[]),
        (presence(Change::Leave), &[]),
        (request(Op::Read { len: 5, timeout_ms: 200 }), &[]),
        (request(Op::Write { kind: Kind::Binary }), payload),
        (request(Op::Write { kind: Kind::Text }), b"hi"),
        (request(Op::Close { code: 4001, reason: "bye".into() }), &[]),
        (reply(Answer::Done), &[]),
        (reply(Answer::Message { kind: Kind::Binary }), payload),
        (reply(Answer::Timeout), &[]),
        (reply(Answer::NotFound), &[]),
        (reply(Answer::NotShared), &[]),
        (reply(Answer::Closed { code: 1006, reason: "gone".into() }), &[]),
        (reply(Answer::Malformed { reason: "bad header".into() }), &[]),
    ];
    for (header, payload) in cases {
        let raw = encode(&header, payload);
        let (back, rest) = decode(&raw).unwrap_or_else(|e| panic!("{header:?}: {e}"));
        assert_eq!((back, rest), (header, payload));
    }
}

#[test]
fn the_format_is_one_readable_json_line() {
    let raw = encode(&request(Op::Read { len: 5, timeout_ms: 200 }), &[]);
    let want = format!(
        r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"read":{{"len":5,"timeout_ms":200}}}}}}"#
    );
    assert_eq!(String::from_utf8(raw).unwrap(), want + "\n");
}

#[test]
fn unknown_kinds_are_rejected() {
    for raw in [
        r#"{"t":"gossip","from":"n1"}"#.to_string(),
        format!(r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"delete":{{}}}}}}"#),
        format!(r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"write":{{"kind":"utf16"}}}}}}"#),
        r#"{"t":"reply","req":7,"answer":"maybe"}"#.to_string(),
        format!(r#"{{"t":"presence","node":"n1","room":"r","id":"{ID}","change":"sulk"}}"#),
    ] {
        assert!(rejected(format!("{raw}\n").as_bytes()).contains("unknown variant"), "{raw}");
    }
}

#[test]
fn missing_fields_are_rejected_not_defaulted() {
    for (raw, field) in [
        // Once, a missing timeout_ms read as a 0 s read.
        (
            format!(r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"read":{{"len":5}}}}}}"#),
            "timeout_ms",
        ),
        (
            format!(r#"{{"t":"request","req":7,"id":"{ID}","op":{{"read":{{"len":5,"timeout_ms":9}}}}}}"#),
            "from",
        ),
        (r#"{"t":"request","req":7,"from":"n1","op":{"close":{"code":1000,"reason":""}}}"#.to_string(), "id"),
        (
            format!(r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"close":{{"code":1000}}}}}}"#),
            "reason",
        ),
        (r#"{"t":"reply","answer":"done"}"#.to_string(), "req"),
        (r#"{"t":"reply","req":7,"answer":{"closed":{"reason":"x"}}}"#.to_string(), "code"),
        (
            format!(
                r#"{{"t":"presence","node":"n1","room":"r","id":"{ID}","change":{{"join":{{"label":"A"}}}}}}"#
            ),
            "since_ms",
        ),
        (r#"{"t":"room"}"#.to_string(), "from"),
        (r#"{"from":"n1"}"#.to_string(), "t"),
    ] {
        let why = rejected(format!("{raw}\n").as_bytes());
        assert!(why.contains("missing field") && why.contains(field), "{raw}: {why}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    for raw in [
        r#"{"t":"room","from":"n1","priority":9}"#.to_string(),
        format!(
            r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"read":{{"len":5,"timeout_ms":9,"peek":true}}}}}}"#
        ),
        r#"{"t":"reply","req":7,"answer":{"closed":{"code":1000,"reason":"","at":1}}}"#.to_string(),
    ] {
        assert!(rejected(format!("{raw}\n").as_bytes()).contains("unknown field"), "{raw}");
    }
}

#[test]
fn malformed_bytes_are_rejected() {
    let read = |len: &str, timeout: &str| {
        format!(
            r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"read":{{"len":{len},"timeout_ms":{timeout}}}}}}}"#
        )
    };
    for raw in [
        b"".to_vec(),
        b"n1\nframe".to_vec(),                   // the old room format
        br#"{"t":"room","from":"n1"}"#.to_vec(), // no header end
        b"{\"t\":\"room\",\"fr\xffom\":\"n1\"}\n".to_vec(),
        b"not json\n".to_vec(),
        br#"{"t":"room","from":"n1"\n"#.to_vec(),
        format!("{}\n", read("-1", "9")).into_bytes(),
        format!("{}\n", read("5", "1.5")).into_bytes(),
        format!("{}\n", read("5", "\"200\"")).into_bytes(),
        format!("{}\n", read("5", "9").replace(ID, "not-an-id")).into_bytes(),
        concat!(r#"{"t":"reply","req":7,"answer":{"closed":{"code":70000,"reason":""}}}"#, "\n")
            .as_bytes()
            .to_vec(),
    ] {
        rejected(&raw);
    }
    // A payload where the header says there is none.
    let mut raw = encode(&request(Op::Read { len: 5, timeout_ms: 9 }), &[]);
    raw.extend_from_slice(b"extra");
    assert_eq!(rejected(&raw), "a payload where none belongs");
    assert!(matches!(message(Kind::Text, &[0xff]), Err(Malformed::NotUtf8)));
}

#[test]
fn an_undecodable_inbox_message_still_says_whom_to_answer() {
    let no_timeout =
        format!(r#"{{"t":"request","req":7,"from":"n1","id":"{ID}","op":{{"read":{{"len":5}}}}}}"#);
    assert_eq!(envelope(no_timeout.as_bytes()), Some(Envelope::Request { req: 7, from: "n1".into() }));
    assert_eq!(envelope(br#"{"t":"reply","req":9,"answer":"maybe"}"#), Some(Envelope::Reply { req: 9 }));
    assert_eq!(envelope(br#"{"t":"request","req":7}"#), None); // no one to answer
    assert_eq!(envelope(br#"{"t":"room","req":7,"from":"n1"}"#), None);
    assert_eq!(envelope(b"\xff\n"), None);
}

#[test]
fn answers_carry_errors_across() {
    let closed = Error::Closed { code: CloseCode(4001), reason: "bye".into() };
    let e = Answer::failure(&closed).outcome().unwrap_err();
    assert!(matches!(e, Error::Closed { code: CloseCode(4001), ref reason } if reason == "bye"));
    assert!(Answer::failure(&Error::Timeout).outcome().unwrap_err().is_timeout());
    let other = Answer::failure(&Error::InvalidInput("odd".into()));
    assert!(matches!(other, Answer::Closed { code: 1006, ref reason } if reason.contains("odd")));
    assert!(matches!(Answer::NotFound.outcome(), Err(Error::InvalidInput(_))));
    assert!(matches!(Answer::Malformed { reason: "x".into() }.outcome(), Err(Error::InvalidInput(_))));
    assert_eq!(Answer::Message { kind: Kind::Text }.outcome().unwrap(), Some(Kind::Text));
    assert_eq!(Answer::Done.outcome().unwrap(), None);
}
