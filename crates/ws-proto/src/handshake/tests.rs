//! The opening handshake's tests: RFC examples, each refusal with its status, both roles.
use super::*;

fn parse<'b>(raw: &'b [u8], headers: &'b mut [httparse::Header<'b>]) -> httparse::Request<'b, 'b> {
    let mut req = httparse::Request::new(headers);
    assert!(req.parse(raw).unwrap().is_complete());
    req
}

const GOOD: &str = "GET /chat?room=a HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn rfc_section_1_3_accept_example() {
    assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn accepts_the_rfc_request() {
    let mut h = [httparse::EMPTY_HEADER; 16];
    let req = parse(GOOD.as_bytes(), &mut h);
    let ok = validate_request(&req).unwrap();
    assert_eq!(ok.path, "/chat?room=a");
    assert_eq!(ok.host, "server.example.com");
    assert_eq!(ok.origin, Some("http://example.com"));
    assert_eq!(ok.protocols, ["chat", "superchat"]);
    let mut out = Vec::new();
    write_accept_response(&mut out, ok.key, Some("chat"), &[]);
    let text = core::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn tokens_inside_lists_case_insensitive() {
    let raw = GOOD
        .replace("Upgrade: websocket", "upgrade: foo, WebSocket")
        .replace("Connection: Upgrade", "connection: keep-alive, upgrade");
    let mut h = [httparse::EMPTY_HEADER; 16];
    assert!(validate_request(&parse(raw.as_bytes(), &mut h)).is_ok());
}

#[test]
fn each_failure_has_its_status() {
    let cases: &[(&str, &str, HandshakeError, u16)] = &[
        ("GET /chat", "POST /chat", HandshakeError::Method, 405),
        ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost", HandshakeError::HttpVersion, 400),
        ("Host: server.example.com\r\n", "", HandshakeError::MissingHost, 400),
        ("Upgrade: websocket", "Upgrade: h2c", HandshakeError::Upgrade, 400),
        ("Connection: Upgrade", "Connection: keep-alive", HandshakeError::Connection, 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==", HandshakeError::Key, 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "!!!", HandshakeError::Key, 400),
        ("Version: 13", "Version: 8", HandshakeError::Version, 426),
    ];
    for (from, to, err, status) in cases {
        let raw = GOOD.replace(from, to);
        let mut h = [httparse::EMPTY_HEADER; 16];
        let got = validate_request(&parse(raw.as_bytes(), &mut h)).unwrap_err();
        assert_eq!(&got, err, "{from} -> {to}");
        assert_eq!(got.status(), *status);
    }
    let mut out = Vec::new();
    HandshakeError::Version.write_response(&mut out);
    let text = core::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn client_request_and_response_round_trip() {
    let key = client_key([7; 16]);
    let mut out = Vec::new();
    let params =
        RequestParams { host: "127.0.0.1:9", path: "/x", protocols: &["a", "b"], extra_headers: &[] };
    write_request(&mut out, &params, &key);
    let mut h = [httparse::EMPTY_HEADER; 16];
    let req = parse(&out, &mut h);
    let ok = validate_request(&req).unwrap();
    assert_eq!(ok.protocols, ["a", "b"]);

    let mut resp_bytes = Vec::new();
    write_accept_response(&mut resp_bytes, ok.key, Some("b"), &[]);
    let mut h2 = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut h2);
    assert!(resp.parse(&resp_bytes).unwrap().is_complete());
    assert_eq!(validate_response(&resp, &key, &["a", "b"]).unwrap().protocol, Some("b"));
    assert_eq!(validate_response(&resp, &key, &["a"]), Err(HandshakeError::Protocol));
    assert_eq!(validate_response(&resp, &client_key([8; 16]), &["b"]), Err(HandshakeError::Accept));
}

#[test]
fn request_head_needs_more_completes_or_is_refused() {
    let limits = HeadLimits { max_bytes: 256, max_headers: 8 };
    let whole = GOOD.as_bytes();
    assert_eq!(request_head_len(&whole[..40], limits), Ok(None));
    let mut with_frame = whole.to_vec();
    with_frame.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
    assert_eq!(request_head_len(&with_frame, limits), Ok(Some(whole.len())), "the frame after it is left");
    let tiny = HeadLimits { max_bytes: 64, max_headers: 8 };
    assert_eq!(request_head_len(whole, tiny), Err(HandshakeError::TooLarge));
    assert_eq!(request_head_len(&whole[..64], tiny), Err(HandshakeError::TooLarge), "partial at the limit");
    let few = HeadLimits { max_bytes: 4096, max_headers: 2 };
    assert_eq!(request_head_len(whole, few), Err(HandshakeError::TooLarge));
    assert!(matches!(
        request_head_len(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", limits),
        Err(HandshakeError::Http(_))
    ));
    let mut out = Vec::new();
    HandshakeError::TooLarge.write_response(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 431 "));
    assert_eq!(response_head_len(b"HTTP/1.1 101 Switching Protocols\r\n\r\nrest", limits), Ok(Some(36)));
}

#[test]
fn extension_offers_parsed() {
    let raw = GOOD.replace(
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1\"\r\nSec-WebSocket-Version",
    );
    let mut h = [httparse::EMPTY_HEADER; 16];
    let req = parse(raw.as_bytes(), &mut h);
    let ok = validate_request(&req).unwrap();
    assert_eq!(ok.extensions.len(), 2);
    assert_eq!(ok.extensions[0].name, "permessage-deflate");
    assert_eq!(ok.extensions[0].params, [("client_max_window_bits", None)]);
    assert_eq!(ok.extensions[1].params, [("a", Some("1"))]);
}
