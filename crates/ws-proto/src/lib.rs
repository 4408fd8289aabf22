//! `ws-proto` is the RFC 6455 WebSocket protocol as a deterministic, sans-IO state machine:
//! frame parsing and encoding, masking, the opening handshake for both roles, close codes,
//! incremental UTF-8 validation, and a [`Connection`] that turns received bytes into
//! [`Event`]s and queued sends into bytes to write.
//!
//! It is not a runtime, a socket wrapper or an HTTP server: it does no I/O, reads no clock and
//! draws no random numbers (the caller passes in bytes, keys and seeds), so it builds with
//! `#![no_std]` + `alloc` and runs the same under tokio, another event loop, or a fuzzer.
//!
//! Start with [`Connection`] (after a handshake checked with [`validate_request`] or
//! [`validate_response`]); the `ws-session` crate wraps it for tokio.
//!
//! # permessage-deflate (RFC 7692)
//!
//! A server answers the offers with [`negotiate_deflate`] (the agreed [`DeflateParams`] and the
//! exact `Sec-WebSocket-Extensions` value); a client sends [`DeflateConfig::offer`] and checks
//! the answer with [`validate_response_with`]. Then [`Connection::set_deflate`] (feature
//! `deflate`, on by default, needs `std`; the negotiation builds without it).
//! [`encode_compressed_frame`] compresses a broadcast once for every connection whose
//! [`Connection::check_send_compressed`] allows it.
//!
//! Memory an idle server connection holds beyond a plain one, after a message each way
//! (counted by `tests/deflate_memory.rs`): besides this, each thread that compresses keeps one
//! spare compressor and one spare inflater, shared by all its connections.
//!
//! | mode | per idle connection |
//! |---|---|
//! | no context takeover either way | 64 B |
//! | server no context takeover (the default), client takeover | 47 KiB (the inflater's) |
//! | context takeover both ways, 15-bit windows | 418 KiB (compressor 371 KiB) |
//! | context takeover both ways, 10-bit windows | 294 KiB |
//!
//! [`DeflateParams::idle_memory`] gives these figures for any agreement, and
//! [`DeflateConfig::max_idle_memory`] bounds them: a server drops its own context, then the
//! client's, from any agreement that would keep more.
//!
//! A zip bomb (10 MiB of zeros in 10 KiB) against a 1 MiB limit peaks at 1071 KiB and fails
//! with 1009.
//!
//! The backend is flate2 on zlib-rs, chosen by `benches/deflate.rs` (raw deflate, level 6,
//! sync flush, state reset per message; µs per message, one run, the two backends side by
//! side on a shared 2-core machine; compressed sizes within 1 % of each other). It is also
//! the only candidate that compresses with windows under 15 bits, which clients ask for
//! (Autobahn 13.3 to 13.7 ask for 9); miniz_oxide always uses 32 KiB.
//!
//! | message | compress zlib-rs | compress miniz_oxide | inflate zlib-rs | inflate miniz_oxide |
//! |---|---|---|---|---|
//! | JSON 153 B | 37.6 | 42.6 | 6.9 | 14.0 |
//! | JSON 364 B | 47.2 | 50.9 | 8.8 | 15.0 |
//! | JSON 1131 B | 49.6 | 93.9 | 14.5 | 18.8 |
//! | JSON 4099 B | 125 | 156 | 24.0 | 29.7 |
//! | binary 64 KiB | 2591 | 5136 | 342 | 369 |
//!
//! flate2 on miniz_oxide (its `rust_backend`) measured the same as miniz_oxide called directly
//! in a run of its own (within 10 %, either way).

#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

mod close;
mod connection;
mod deflate;
mod error;
mod frame;
mod handshake;
mod mask;
mod text;
mod utf8;

pub use close::{
    CloseCode, CloseFrame, MAX_CLOSE_REASON, encode_close_payload, parse_close_payload, truncate_reason,
};
pub use connection::{
    Config, Connection, Event, MessageKind, OUTPUT_MIN, PONG_QUEUE_MAX, Role, State, encode_server_frame,
};
#[cfg(feature = "deflate")]
pub use deflate::codec::encode_compressed_frame;
pub use deflate::{
    DeflateAgreement, DeflateConfig, DeflateParams, PERMESSAGE_DEFLATE, negotiate_deflate,
    negotiate_deflate_headers, validate_deflate_response,
};
pub use error::{ProtocolError, SendError};
pub use frame::{FrameHeader, HeaderError, HeaderParse, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
pub use handshake::{
    ClientRequest, ExtensionOffer, HandshakeError, HeadLimits, RequestParams, ServerResponse, accept_key,
    client_key, header_tokens, header_value, list_tokens, parse_extensions, request_head_len,
    response_head_len, validate_request, validate_response, validate_response_with, write_accept_response,
    write_error_response, write_request,
};
pub use mask::apply_mask;
pub use text::Utf8Bytes;
pub use utf8::{InvalidUtf8, Utf8Validator};

/// `httparse`, re-exported so callers parse requests with the same version this crate reads
/// (with the `std` feature, its errors implement `std::error::Error`).
pub use httparse;

/// `bytes`, re-exported: [`Connection::poll_event`] reads from a [`bytes::BytesMut`] and hands
/// out [`bytes::Bytes`].
pub use bytes;

#[cfg(test)]
mod tests;
