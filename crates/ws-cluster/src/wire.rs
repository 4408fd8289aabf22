//! What nodes say to each other over Redis pub/sub: a JSON header line, then raw payload
//! bytes (so binary messages cross unchanged).

use bytes::Bytes;
use serde_json::{Value, json};
use ws_server::{CloseCode, Error, Message};

/// Splits `header\npayload`.
pub(crate) fn split(raw: &[u8]) -> Option<(Value, &[u8])> {
    let nl = raw.iter().position(|&b| b == b'\n')?;
    let header = serde_json::from_slice(&raw[..nl]).ok()?;
    Some((header, &raw[nl + 1..]))
}

pub(crate) fn join(header: &Value, payload: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

pub(crate) fn message_parts(msg: &Message) -> (&'static str, &[u8]) {
    match msg {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
    }
}

pub(crate) fn message_from(kind: Option<&str>, payload: &[u8]) -> Option<Message> {
    match kind {
        Some("text") => std::str::from_utf8(payload).ok().map(|t| Message::Text(t.into())),
        Some("binary") => Some(Message::Binary(Bytes::copy_from_slice(payload))),
        _ => None,
    }
}

/// The reply header for an operation's error.
pub(crate) fn error_header(req: u64, e: &Error) -> Value {
    match e {
        Error::Timeout => json!({ "t": "rep", "req": req, "ok": false, "err": "timeout" }),
        Error::Closed { code, reason } => {
            json!({ "t": "rep", "req": req, "ok": false, "err": "closed", "code": code.0, "reason": reason })
        }
        other => {
            json!({ "t": "rep", "req": req, "ok": false, "err": "closed", "code": other.close_code().map_or(1006, |c| c.0), "reason": other.to_string() })
        }
    }
}

/// The error a reply header describes.
pub(crate) fn error_from(header: &Value) -> Error {
    match header["err"].as_str() {
        Some("timeout") => Error::Timeout,
        Some("notfound") => Error::InvalidInput("no such WebSocket".into()),
        Some("notshared") => Error::InvalidInput("the WebSocket is not shared".into()),
        _ => Error::Closed {
            code: CloseCode(header["code"].as_u64().unwrap_or(1006) as u16),
            reason: header["reason"].as_str().unwrap_or("").to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_safe_round_trip() {
        let payload = [0u8, 10, 255, b'\n', 7];
        let raw = join(&json!({ "op": "write", "kind": "binary" }), &payload);
        let (h, p) = split(&raw).unwrap();
        assert_eq!(h["op"], "write");
        assert_eq!(p, payload);
        assert_eq!(
            message_from(h["kind"].as_str(), p),
            Some(Message::Binary(Bytes::copy_from_slice(&payload)))
        );
        assert_eq!(message_from(Some("text"), &[0xff]), None);
        let e = error_from(&error_header(1, &Error::Closed { code: CloseCode(4001), reason: "bye".into() }));
        assert!(matches!(e, Error::Closed { code: CloseCode(4001), ref reason } if reason == "bye"));
    }
}
