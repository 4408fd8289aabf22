//! Benchmarks of `ws-proto`'s hot paths: masking, frame headers, UTF-8 validation, and a
//! server `Connection` reading whole masked messages.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ws_proto::{
    Config, Connection, Event, FrameHeader, HeaderParse, OpCode, Role, Utf8Validator, apply_mask,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// `apply_mask` against a plain copy of the same size: masking touches every byte once, so a
/// memcpy is the speed it should approach.
fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (name, size) in [("16B", 16), ("1KiB", 1 << 10), ("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(KEY), black_box(0)))
        });
        let src = buf.clone();
        let mut dst = vec![0u8; size];
        group.bench_function(BenchmarkId::new("copy_from_slice", name), |b| {
            b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&src[..])))
        });
    }
    group.finish();
}

/// Parsing and encoding one header in each of the three length forms (7-bit, 16-bit, 64-bit).
fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    for (name, payload_len) in [("len7", 100u64), ("len16", 1000), ("len64", 100_000)] {
        let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: Some(KEY), payload_len };
        let mut wire = Vec::new();
        header.encode(&mut wire);
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| match FrameHeader::parse(black_box(&wire)) {
                Ok(HeaderParse::Complete { header, header_len }) => (header, header_len),
                other => panic!("{other:?}"),
            })
        });
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                let mut out = [0u8; ws_proto::MAX_HEADER_LEN];
                let mut cursor = &mut out[..];
                black_box(&header).encode(&mut cursor);
                black_box(out)
            })
        });
    }
    group.finish();
}

/// `len` bytes of ASCII text.
fn ascii_text(len: usize) -> String {
    "The quick brown fox jumps over the lazy dog. ".chars().cycle().take(len).collect()
}

/// Up to `len` bytes of text mixing 1-, 2-, 3- and 4-byte characters.
fn mixed_text(len: usize) -> String {
    let mut s = String::with_capacity(len);
    for c in "héllo wörld, 価格は€42 — ok 𝄞 Ωμέγα! ".chars().cycle() {
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    s
}

/// The incremental validator fed a whole message at once, against `core::str::from_utf8`.
fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (name, text) in [("ascii_16KiB", ascii_text(16 << 10)), ("mixed_16KiB", mixed_text(16 << 10))] {
        let bytes = text.into_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("validator_feed", name), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(&bytes)).unwrap();
                v.finish().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("core_from_utf8", name), |b| {
            b.iter(|| core::str::from_utf8(black_box(&bytes)).is_ok())
        });
    }
    group.finish();
}

/// A server reading one masked text message: header, unmasking, validation, split-off.
fn connection(c: &mut Criterion) {
    let mut group = c.benchmark_group("connection");
    for (name, len) in [("text_20B", 20), ("text_16KiB", 16 << 10)] {
        let mut client = Connection::new(Role::Client, Config::client(0x5eed));
        client.send_text(&ascii_text(len)).unwrap();
        let wire = client.take_output().freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("server_poll_event", name), |b| {
            b.iter_batched(
                || (Connection::new(Role::Server, Config::default()), BytesMut::from(&wire[..])),
                // Hand everything back so dropping it is not timed.
                |(mut server, mut input)| match server.poll_event(&mut input) {
                    Ok(Some(Event::Text(text))) => (text, server, input),
                    other => panic!("{other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

// The macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod suite {
    use super::*;
    criterion_group!(benches, mask, header, utf8, connection);
}
criterion_main!(suite::benches);
