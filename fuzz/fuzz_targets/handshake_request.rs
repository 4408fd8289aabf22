//! The server side of the opening handshake on arbitrary bytes: a request `httparse` accepts
//! is either answered 101 with an accept key the client side validates, or refused with a
//! well-formed 400, 405 or 426 response.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::httparse::{self, Status};
use ws_proto::{validate_request, validate_response, write_accept_response};

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(Status::Complete(_)) = req.parse(data) else { return };
    let mut out = Vec::new();
    match validate_request(&req) {
        Ok(request) => {
            let protocol = request.protocols.first().copied();
            write_accept_response(&mut out, request.key, protocol, &[]);
            // The answer is what a client that sent this request accepts.
            let key = core::str::from_utf8(request.key).expect("a valid key is base64");
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            assert_eq!(resp.parse(&out).map(|s| s.is_complete()), Ok(true), "{out:?}");
            let accepted = validate_response(&resp, key, &request.protocols).expect("own answer refused");
            assert_eq!(accepted.protocol, protocol);
        }
        Err(err) => {
            let status = err.status();
            assert!(matches!(status, 400 | 405 | 426), "{err:?} answered {status}");
            err.write_response(&mut out);
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            let Ok(Status::Complete(head_len)) = resp.parse(&out) else { panic!("bad response {out:?}") };
            assert_eq!(resp.code, Some(status));
            let length = ws_proto::header_value(resp.headers, "Content-Length").expect("Content-Length");
            assert_eq!(core::str::from_utf8(length).unwrap().parse::<usize>().unwrap(), out.len() - head_len);
        }
    }
});
