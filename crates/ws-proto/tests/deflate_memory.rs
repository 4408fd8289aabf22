//! What permessage-deflate costs in memory, counted by a global allocator: the peak while a zip
//! bomb is refused, and what an idle connection holds in each mode (the figures in the crate
//! docs come from `cargo test -p ws-proto --test deflate_memory -- --nocapture`).
#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use ws_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, ProtocolError, Role, negotiate_deflate,
};

/// Counts the bytes live on the current thread (each test runs on its own thread), and their
/// peak.
struct Counting;

std::thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counting touches only const-initialised thread-locals (no allocation, no panic).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller guarantees `new_size` is valid for `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Resets the peak to what is live now and returns that.
fn start_peak() -> isize {
    let now = live();
    PEAK.with(|p| p.set(now));
    now
}

fn peak() -> isize {
    PEAK.with(Cell::get)
}

fn events(conn: &mut Connection, input: &mut BytesMut) -> Result<Vec<Event>, ProtocolError> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event(input)? {
        out.push(event);
    }
    Ok(out)
}

fn agreed(offer: &str, config: &DeflateConfig) -> DeflateParams {
    negotiate_deflate(config, [offer.as_bytes()]).unwrap().params
}

#[test]
fn a_zip_bomb_is_refused_without_allocating_past_the_limit() {
    const LIMIT: usize = 1 << 20;
    let config = DeflateConfig::default().min_size(0);
    let params = agreed("permessage-deflate; client_no_context_takeover", &config);
    let mut client = Connection::new(Role::Client, Config::client(9));
    client.set_deflate(params, &config);
    client.send_binary(&vec![0; 10 << 20]).unwrap();
    let mut wire = client.take_output();
    drop(client);
    let mut server = Connection::new(Role::Server, Config::default().max_message_size(LIMIT));
    server.set_deflate(params, &config);

    let compressed = wire.len();
    let before = start_peak();
    let result = events(&mut server, &mut wire);
    let extra = peak() - before;
    eprintln!(
        "zip bomb: {compressed} B compressed, peak {} KiB above the start against a {} KiB limit",
        extra >> 10,
        LIMIT >> 10
    );
    assert!(matches!(result, Err(ProtocolError::MessageTooBig(_))), "{result:?}");
    // The message buffer never passes the limit; the rest is the inflater (about 40 KiB).
    assert!(extra < (LIMIT + (128 << 10)) as isize, "peak {extra}");
}

/// Live bytes a connection holds once idle, after a message each way, in one mode.
fn idle_bytes(offer: &str, config: &DeflateConfig) -> isize {
    let params = agreed(offer, config);
    let msg = br#"{"type":"message","room":"lobby","user":"alice","text":"idle soon, so the state must go","ts":1}"#;
    let run = || {
        let mut client = Connection::new(Role::Client, Config::client(9));
        client.set_deflate(params, config);
        let mut server = Connection::new(Role::Server, Config::default());
        server.set_deflate(params, config);
        client.send_binary(msg).unwrap();
        let mut input = client.take_output();
        assert_eq!(events(&mut server, &mut input).unwrap().len(), 1);
        server.send_binary(msg).unwrap();
        let mut input = server.take_output();
        assert_eq!(events(&mut client, &mut input).unwrap().len(), 1);
        drop(client);
        server.shrink_idle();
        server
    };
    drop(run()); // fills this thread's spare compressor and inflater, shared by every connection
    let before = live();
    let plain = Connection::new(Role::Server, Config::default());
    let baseline = live() - before;
    drop(plain);
    let before = live();
    let server = run();
    let held = live() - before - baseline;
    drop(server);
    held
}

#[test]
fn idle_memory_per_mode() {
    let config = DeflateConfig::default().min_size(0);
    let takeover = config.clone().server_no_context_takeover(false);
    let small = takeover.clone().server_max_window_bits(10).client_max_window_bits(10);
    let modes = [
        ("no context takeover either way", "permessage-deflate; client_no_context_takeover", &config),
        ("server no context takeover (default)", "permessage-deflate", &config),
        ("context takeover both ways", "permessage-deflate", &takeover),
        ("context takeover, 10-bit windows", "permessage-deflate; client_max_window_bits", &small),
    ];
    let mut figures = Vec::new();
    for (name, offer, config) in modes {
        let held = idle_bytes(offer, config);
        eprintln!("idle server connection, {name}: {held} B above a plain one");
        figures.push(held);
    }
    assert!(figures[0] < 512, "no state while idle: {figures:?}");
    assert!(figures[1] > 8 << 10 && figures[1] < 128 << 10, "an inflater only: {figures:?}");
    assert!(figures[2] > 128 << 10, "a compressor and an inflater: {figures:?}");
    assert!(figures[3] < figures[2], "smaller windows hold less: {figures:?}");
}

/// `DeflateParams::idle_memory`, which `DeflateConfig::max_idle_memory` bounds, is what a
/// connection really keeps: never less, and at most 10 % (or 1 KiB) more.
#[test]
fn the_idle_memory_estimate_holds() {
    let base = DeflateConfig::default().min_size(0);
    let mut checked = 0;
    for bits in [9, 12, 15] {
        let takeover = base.clone().server_no_context_takeover(false).server_max_window_bits(bits);
        for (offer, config) in [
            ("permessage-deflate; client_no_context_takeover", &base),
            ("permessage-deflate", &base),
            ("permessage-deflate; client_no_context_takeover", &takeover),
            ("permessage-deflate", &takeover),
        ] {
            let held = idle_bytes(offer, config) as usize;
            let estimate = agreed(offer, config).idle_memory();
            eprintln!(
                "{offer} (server window {bits}, takeover {}): held {held} B, estimate {estimate} B",
                !config.server_no_context_takeover
            );
            assert!(
                held <= estimate && estimate <= (held + held / 10).max(held + 1024),
                "held {held}, estimate {estimate}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
