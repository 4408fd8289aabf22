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
