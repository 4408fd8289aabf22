//! Which deflate backend permessage-deflate uses: raw deflate with a sync flush (RFC 7692
//! section 7.2.1), one message at a time from a fresh or reset state (no context takeover),
//! compress and inflate, on chat-like JSON (100 B to 4 KiB) and 64 KiB of compressible binary.
//!
//! flate2 has one backend per build, so run this twice:
//!
//! ```text
//! cargo bench -p ws-proto --bench deflate                                  # flate2 = zlib-rs
//! cargo bench -p ws-proto --bench deflate --no-default-features -F std    # flate2 = miniz_oxide
//! ```
//!
//! `miniz_oxide` (called directly) runs in both.

#![allow(missing_docs)] // criterion's macros write undocumented functions

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use miniz_oxide::deflate::core::{CompressorOxide, create_comp_flags_from_zip_params};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZFlush};

const LEVEL: u8 = 6;

#[cfg(feature = "deflate")]
const FLATE2: &str = "flate2+zlib-rs";
#[cfg(not(feature = "deflate"))]
const FLATE2: &str = "flate2+miniz_oxide";

/// A small deterministic generator (xorshift), so every run sees the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Chat messages like the chat example's wire format, as a JSON array filled to `size` bytes
/// (one message for the small sizes, a page of history for the large ones).
fn chat_json(size: usize, seed: u64) -> Vec<u8> {
    const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
    const ROOMS: &[&str] = &["lobby", "rust", "random", "support"];
    const WORDS: &[&str] = &[
        "the",
        "server",
        "is",
        "up",
        "again",
        "did",
        "you",
        "see",
        "deploy",
        "message",
        "room",
        "ok",
        "thanks",
        "lunch",
        "at",
        "noon",
        "ping",
        "me",
        "when",
        "ready",
        "build",
        "passed",
        "on",
        "main",
        "review",
        "please",
        "websocket",
        "latency",
        "looks",
        "fine",
        "today",
        "weekend",
        "coffee",
        "meeting",
        "moved",
        "to",
        "three",
    ];
    let mut rng = Rng(seed);
    let mut ts = 1_764_633_600_000u64;
    let mut out = String::from("[");
    while out.len() < size {
        if out.len() > 1 {
            out.push(',');
        }
        ts += rng.next() % 5000;
        let mut text = String::new();
        for _ in 0..3 + rng.next() % 12 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(rng.pick(WORDS));
        }
        out.push_str(&format!(
            r#"{{"type":"message","room":"{}","user":"{}","text":"{}","ts":{}}}"#,
            rng.pick(ROOMS),
            rng.pick(USERS),
            text,
            ts
        ));
    }
    out.push(']');
    out.into_bytes()
}

/// 64 KiB of records a telemetry stream might carry: slowly moving counters, small noisy
/// readings and repeated tags; compressible, but not trivially.
fn binary_64k() -> Vec<u8> {
    let mut rng = Rng(0x5eed_1234);
    let mut out = Vec::with_capacity(65536);
    let mut counter = 0u32;
    while out.len() < 65536 {
        counter += 1 + (rng.next() % 3) as u32;
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(&((rng.next() % 512) as u16).to_le_bytes());
        out.extend_from_slice(b"TEMPSENS");
        out.push((rng.next() & 0xff) as u8);
        out.push(0);
    }
    out.truncate(65536);
    out
}

fn flate2_compress(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    c.reset();
    loop {
        let consumed = c.total_in() as usize;
        out.reserve(input.len() / 2 + 64);
        c.compress_vec(&input[consumed..], out, FlushCompress::Sync).expect("compress");
        if c.total_in() as usize == input.len() && out.len() < out.capacity() {
            break;
        }
    }
}

fn flate2_inflate(d: &mut Decompress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    d.reset(false);
    loop {
        let consumed = d.total_in() as usize;
        out.reserve(4096);
        d.decompress_vec(&input[consumed..], out, FlushDecompress::Sync).expect("inflate");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            break;
        }
    }
}

fn miniz_compress(c: &mut CompressorOxide, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    c.reset();
    let mut consumed = 0;
    loop {
        let start = out.len();
        let room = input.len() / 2 + 64;
        out.resize(start + room, 0);
        let r =
            miniz_oxide::deflate::stream::deflate(c, &input[consumed..], &mut out[start..], MZFlush::Sync);
        r.status.expect("compress");
        consumed += r.bytes_consumed;
        out.truncate(start + r.bytes_written);
        if consumed == input.len() && r.bytes_written < room {
            break;
        }
    }
}

fn miniz_inflate(d: &mut InflateState, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    d.reset(DataFormat::Raw);
    let mut consumed = 0;
    loop {
        let start = out.len();
        out.resize(start + 4096, 0);
        let r =
            miniz_oxide::inflate::stream::inflate(d, &input[consumed..], &mut out[start..], MZFlush::Sync);
        consumed += r.bytes_consumed;
        out.truncate(start + r.bytes_written);
        match r.status {
            // No progress possible: everything was already out.
            Err(miniz_oxide::MZError::Buf) if consumed == input.len() => break,
            Err(e) => panic!("inflate: {e:?}"),
            Ok(_) if consumed == input.len() && r.bytes_written < 4096 => break,
            Ok(_) => {}
        }
    }
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [100, 300, 1024, 4096]
        .iter()
        .map(|&n| {
            let d = chat_json(n, n as u64 + 1);
            (format!("json-{}B", d.len()), d)
        })
        .collect();
    v.push(("binary-64KiB".into(), binary_64k()));
    v
}

fn bench(c: &mut Criterion) {
    let mut f2c = Compress::new(Compression::new(LEVEL.into()), false);
    let mut f2d = Decompress::new(false);
    let mut mzc = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL.into(), -15, 0));
    let mut mzd = InflateState::new_boxed(DataFormat::Raw);
    let mut out = Vec::new();
    for (name, data) in inputs() {
        let mut group = c.benchmark_group(format!("compress/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        flate2_compress(&mut f2c, &data, &mut out);
        let f2_len = out.len();
        miniz_compress(&mut mzc, &data, &mut out);
        let mz_len = out.len();
        eprintln!("{name}: {} B -> {FLATE2} {f2_len} B, miniz_oxide {mz_len} B", data.len());
        group.bench_function(BenchmarkId::from_parameter(FLATE2), |b| {
            b.iter(|| flate2_compress(&mut f2c, black_box(&data), &mut out))
        });
        group.bench_function(BenchmarkId::from_parameter("miniz_oxide"), |b| {
            b.iter(|| miniz_compress(&mut mzc, black_box(&data), &mut out))
        });
        group.finish();

        // Both inflate the same stream (flate2's), so only the inflater differs.
        flate2_compress(&mut f2c, &data, &mut out);
        let packed = out.clone();
        let mut group = c.benchmark_group(format!("inflate/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(FLATE2), |b| {
            b.iter(|| flate2_inflate(&mut f2d, black_box(&packed), &mut out))
        });
        assert_eq!(out, data);
        group.bench_function(BenchmarkId::from_parameter("miniz_oxide"), |b| {
            b.iter(|| miniz_inflate(&mut mzd, black_box(&packed), &mut out))
        });
        assert_eq!(out, data);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
