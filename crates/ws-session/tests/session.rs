//! ws-session behaviour over real loopback TCP: IRIS `read(len, timeout)` semantics,
//! cancellation, the closing handshake, dead and slow peers.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_proto::{CloseCode, Connection, MessageKind, Role};
use ws_session::server_support::Deadline;
use ws_session::{Config, ConnectOptions, Error, Message, Transport, WebSocket, accept, connect};

const T: Duration = Duration::from_secs(10);

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/test", l.local_addr().unwrap());
    (l, url)
}

/// A connected (server, client) pair over loopback.
async fn pair_with(server_config: Config) -> (WebSocket<TcpStream>, WebSocket<Transport>) {
    let (l, url) = listener().await;
    let server = async move {
        let (s, _) = l.accept().await.unwrap();
        accept(s, server_config).await.unwrap()
    };
    let client = async move { connect(&url, &ConnectOptions::default()).await.unwrap().0 };
    tokio::time::timeout(T, async { tokio::join!(server, client) }).await.unwrap()
}

async fn pair() -> (WebSocket<TcpStream>, WebSocket<Transport>) {
    pair_with(Config::default()).await
}

/// A server socket and a raw TCP client that did the handshake by hand, for sending bytes the
/// client API would never send.
async fn server_and_raw_client(config: Config) -> (WebSocket<TcpStream>, TcpStream) {
    let (l, _) = listener().await;
    let addr = l.local_addr().unwrap();
    let server = async move {
        let (s, _) = l.accept().await.unwrap();
        accept(s, config).await.unwrap()
    };
    let client = async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"));
        c
    };
    tokio::time::timeout(T, async { tokio::join!(server, client) }).await.unwrap()
}

fn client_frames(build: impl FnOnce(&mut Connection)) -> BytesMut {
    let mut c = Connection::new(Role::Client, ws_proto::Config::client(7));
    build(&mut c);
    c.take_output()
}

/// Reads one unmasked server Close frame from a raw client and returns its code.
async fn read_close_code(raw: &mut TcpStream) -> u16 {
    let mut head = [0u8; 2];
    tokio::time::timeout(T, raw.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(head[0], 0x88, "a Close frame");
    let mut payload = vec![0u8; (head[1] & 0x7F) as usize];
    tokio::time::timeout(T, raw.read_exact(&mut payload)).await.unwrap().unwrap();
    u16::from_be_bytes([payload[0], payload[1]])
}

fn text(m: &Message) -> &str {
    m.as_text().expect("a text message")
}

#[tokio::test]
async fn read_len_splits_by_characters() {
    let (mut server, mut client) = pair().await;
    // 100 characters, many of them multi-byte.
    let msg: String = "aé€😀".chars().cycle().take(100).collect();
    client.write(&msg).await.unwrap();
    let mut pieces = Vec::new();
    loop {
        let piece = server.read(30, T).await.unwrap();
        pieces.push(text(&piece).to_string());
        if !server.message_continues() {
            break;
        }
    }
    let counts: Vec<usize> = pieces.iter().map(|p| p.chars().count()).collect();
    assert_eq!(counts, [30, 30, 30, 10]);
    assert_eq!(pieces.concat(), msg);

    // Binary messages are counted in bytes.
    client.write_binary(&[1u8; 70]).await.unwrap();
    let sizes = [
        server.read(30, T).await.unwrap(),
        server.read(30, T).await.unwrap(),
        server.read(30, T).await.unwrap(),
    ]
    .map(|m| m.len());
    assert_eq!(sizes, [30, 30, 10]);
}

#[tokio::test]
async fn timeout_leaves_the_socket_usable() {
    let (mut server, mut client) = pair().await;
    let err = server.read(100, Duration::from_millis(50)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(!server.is_closed());
    client.write("after the timeout").await.unwrap();
    assert_eq!(text(&server.read(100, T).await.unwrap()), "after the timeout");
    server.write("still writable").await.unwrap();
    assert_eq!(text(&client.read(100, T).await.unwrap()), "still writable");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_starts_when_first_needed_then_stays_fixed() {
    let mut deadline = Deadline::after(Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(1)).await;
    let first = tokio::time::Instant::now();
    let at = deadline.instant();
    assert_eq!(at, first + Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(deadline.instant(), at, "a started timeout does not move");
    // "Forever" does not overflow the clock.
    let far = Deadline::after(Duration::MAX).instant();
    assert!(far > tokio::time::Instant::now() + Duration::from_secs(86400 * 300));
}

#[tokio::test]
async fn one_deadline_bounds_a_loop_of_interrupted_reads() {
    let (mut server, _client) = pair().await;
    let interrupt = std::sync::Arc::new(ws_session::server_support::Interrupt::new());
    let raiser = interrupt.clone();
    let raising = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        raiser.raise();
    });
    let mut deadline = Deadline::after(Duration::from_millis(300));
    let mut interrupted = 0;
    let err = loop {
        match server.read_interruptible_until(100, &mut deadline, &interrupt).await {
            Ok(None) => {
                assert!(interrupt.clear());
                interrupted += 1;
                assert!(interrupted < 10, "raised once, interrupted {interrupted} times");
            }
            Ok(Some(m)) => panic!("nothing was sent, read {m:?}"),
            Err(e) => break e,
        }
    };
    assert!(err.is_timeout(), "{err}");
    assert_eq!(interrupted, 1);
    raising.await.unwrap();
    assert!(!server.is_closed());
}

#[tokio::test]
async fn read_cancelled_mid_message_loses_nothing() {
    let (mut server, mut raw) = server_and_raw_client(Config::default()).await;
    let big: String = "0123456789abcdef".repeat(16 * 1024); // 256 KiB of text
    let wire = client_frames(|c| {
        c.send_text(&big).unwrap();
        c.send_fragment(MessageKind::Binary, b"frag-1 ", false).unwrap();
        c.send_fragment(MessageKind::Binary, b"frag-2", true).unwrap();
    });
    let first_len = wire.len() - 24; // ends inside the fragmented message
    let half = wire.len() / 3;
    raw.write_all(&wire[..half]).await.unwrap();
    // Each read times out while the message is half received...
    for _ in 0..3 {
        let err = server.read(0, Duration::from_millis(30)).await.unwrap_err();
        assert!(err.is_timeout());
    }
    // ...and a read dropped by select! mid-message loses nothing either.
    tokio::select! {
        r = server.read(0, T) => panic!("nothing complete yet: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(30)) => {}
    }
    raw.write_all(&wire[half..first_len]).await.unwrap();
    assert_eq!(text(&server.read(0, T).await.unwrap()), big);
    let err = server.read(0, Duration::from_millis(30)).await.unwrap_err();
    assert!(err.is_timeout());
    raw.write_all(&wire[first_len..]).await.unwrap();
    assert_eq!(
        server.read(0, T).await.unwrap(),
        Message::Binary(bytes::Bytes::from_static(b"frag-1 frag-2"))
    );
}

#[tokio::test]
async fn client_closes_code_and_reason_reach_the_server() {
    let (mut server, mut client) = pair().await;
    let server_side = tokio::spawn(async move {
        let err = server.read(100, T).await.unwrap_err();
        (err, server)
    });
    client.close(CloseCode(4001), "bye ü").await.unwrap();
    assert!(client.is_closed());
    let (err, mut server) = server_side.await.unwrap();
    match err {
        Error::Closed { code, reason } => assert_eq!((code, reason.as_str()), (CloseCode(4001), "bye ü")),
        other => panic!("{other:?}"),
    }
    // Every later call says the same.
    assert!(matches!(server.read(1, T).await, Err(Error::Closed { code: CloseCode(4001), .. })));
    assert!(matches!(server.write("late").await, Err(Error::Closed { .. })));
}

#[tokio::test]
async fn end_server_closes_with_1000() {
    let (mut server, mut client) = pair().await;
    let client_side = tokio::spawn(async move { client.read(100, T).await });
    server.end_server().await.unwrap();
    match client_side.await.unwrap() {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
    // Closing twice is fine.
    server.end_server().await.unwrap();
}

#[tokio::test]
async fn peer_that_never_answers_close_is_given_up_on() {
    let config = Config::default().close_timeout(Duration::from_millis(200));
    let (mut server, raw) = server_and_raw_client(config).await;
    // The raw client never reads nor answers: end_server must still return, within its bound.
    let started = std::time::Instant::now();
    tokio::time::timeout(T, server.end_server()).await.expect("bounded").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(server.is_closed());
    drop(raw);
}

#[tokio::test]
async fn peer_that_vanishes_reads_as_closed_1006() {
    let (mut server, client) = pair().await;
    drop(client); // TCP closed without a Close frame
    match server.read(100, T).await {
        Err(Error::Closed { code, .. }) => assert_eq!(code, CloseCode::ABNORMAL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn protocol_error_is_reported_and_answered() {
    let (mut server, mut raw) = server_and_raw_client(Config::default()).await;
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap(); // unmasked client frame
    let server_side = tokio::spawn(async move { server.read(100, T).await });
    assert_eq!(read_close_code(&mut raw).await, 1002);
    drop(raw); // as a real client does once it has the Close and the server's FIN
    match server_side.await.unwrap() {
        Err(Error::Protocol { code, .. }) => assert_eq!(code, CloseCode::PROTOCOL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn invalid_utf8_answered_with_1007_and_oversize_with_1009() {
    let config = Config::default().max_message_size(1000);
    let (mut server, mut raw) = server_and_raw_client(config.clone()).await;
    let mut bad = client_frames(|c| c.send_binary(b"\xff\xfe").unwrap());
    bad[0] = 0x81; // as text
    raw.write_all(&bad).await.unwrap();
    let server_side = tokio::spawn(async move { server.read(100, T).await });
    assert_eq!(read_close_code(&mut raw).await, 1007);
    drop(raw);
    assert!(matches!(server_side.await.unwrap(), Err(Error::Protocol { code: CloseCode(1007), .. })));

    let (mut server, mut raw) = server_and_raw_client(config).await;
    raw.write_all(&client_frames(|c| c.send_binary(&[0; 2000]).unwrap())).await.unwrap();
    let server_side = tokio::spawn(async move { server.read(100, T).await });
    assert_eq!(read_close_code(&mut raw).await, 1009);
    drop(raw);
    assert!(matches!(server_side.await.unwrap(), Err(Error::Protocol { code: CloseCode(1009), .. })));
}

#[tokio::test]
async fn slow_reader_makes_the_writer_wait_at_the_bound() {
    let bound = 256 * 1024;
    let config = Config::default().max_write_buffer(bound);
    let (mut server, mut client) = pair_with(config).await;
    let chunk = vec![0x5A; 64 * 1024];
    let mut sent = 0usize;
    let mut blocked = false;
    // The client reads nothing: sooner or later (kernel buffers fill) a write must wait.
    for _ in 0..4096 {
        match tokio::time::timeout(Duration::from_millis(200), server.write_binary(&chunk)).await {
            Ok(r) => {
                r.unwrap();
                sent += 1;
                assert!(server.buffered_amount() <= bound, "buffer {} over bound", server.buffered_amount());
            }
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "the writer never waited after {sent} messages");
    // The message whose write was interrupted was already queued: it is delivered too.
    let queued = sent + 1;
    assert!(server.buffered_amount() <= bound + chunk.len());
    let reader = tokio::spawn(async move {
        for i in 0..queued {
            let m = client.read(0, T).await.unwrap();
            assert_eq!(m.len(), chunk.len(), "message {i}");
        }
        client
    });
    tokio::time::timeout(T, server.flush()).await.unwrap().unwrap();
    let _client = reader.await.unwrap();
}

#[tokio::test]
async fn pings_are_answered_and_keepalive_gives_up_on_a_silent_peer() {
    let (mut server, mut client) = pair().await;
    // The client answers the server's ping while its read waits.
    let client_side = tokio::spawn(async move { client.read(10, Duration::from_millis(300)).await });
    server.ping(b"are you there").await.unwrap();
    let err = server.read(10, Duration::from_millis(300)).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(client_side.await.unwrap().unwrap_err().is_timeout());

    let config = Config::default()
        .keepalive_interval(Some(Duration::from_millis(50)))
        .keepalive_timeout(Duration::from_millis(100))
        .close_timeout(Duration::from_millis(100));
    let (mut server, _raw) = server_and_raw_client(config).await;
    match server.read(10, T).await {
        Err(Error::Closed { code, reason }) => {
            assert_eq!(code, CloseCode::GOING_AWAY);
            assert_eq!(reason, "keepalive timeout");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn keepalive_keeps_a_responsive_peer() {
    let config = Config::default()
        .keepalive_interval(Some(Duration::from_millis(30)))
        .keepalive_timeout(Duration::from_millis(100));
    let (mut server, mut client) = pair_with(config).await;
    let client_side = tokio::spawn(async move {
        // Reading answers the pings; after a while send one message.
        let _ = client.read(10, Duration::from_millis(400)).await;
        client.write("still here").await.unwrap();
        client
    });
    assert_eq!(text(&server.read(100, T).await.unwrap()), "still here");
    let _client = client_side.await.unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let config = Config::default().idle_timeout(Some(Duration::from_millis(100)));
    let (mut server, mut client) = pair_with(config).await;
    let client_side = tokio::spawn(async move { client.read(10, T).await });
    assert!(matches!(server.read(10, T).await, Err(Error::Closed { code: CloseCode(1001), .. })));
    assert!(matches!(client_side.await.unwrap(), Err(Error::Closed { code: CloseCode(1001), .. })));
}

#[tokio::test]
async fn binary_data_switches_write_to_binary_frames() {
    let (mut server, mut client) = pair().await;
    server.write("as text").await.unwrap();
    server.set_binary_data(true);
    server.write("as binary").await.unwrap();
    assert!(client.read(0, T).await.unwrap().is_text());
    assert_eq!(client.read(0, T).await.unwrap(), Message::Binary(bytes::Bytes::from_static(b"as binary")));
}

#[tokio::test]
async fn bad_handshakes_get_their_http_status() {
    for (request, status) in [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "426",
        ),
    ] {
        let (l, _) = listener().await;
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            accept(s, Config::default()).await.map(|_| ())
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut resp = String::new();
        tokio::time::timeout(T, c.read_to_string(&mut resp)).await.unwrap().unwrap();
        assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{resp}");
        if status == "426" {
            assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
        }
        assert!(matches!(server.await.unwrap(), Err(Error::Handshake(_))));
    }
}

#[tokio::test]
async fn subprotocol_negotiated() {
    let (l, url) = listener().await;
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        ws_session::accept_with(s, Config::default(), |req| {
            Ok(req.protocols.iter().find(|p| **p == "chat.v2").map(|p| p.to_string()))
        })
        .await
        .unwrap()
    });
    let options = ConnectOptions::default().protocol("chat.v3").protocol("chat.v2");
    let (client, resp) = connect(&url, &options).await.unwrap();
    assert_eq!(resp.protocol.as_deref(), Some("chat.v2"));
    assert_eq!(client.protocol(), Some("chat.v2"));
    assert_eq!(server.await.unwrap().protocol(), Some("chat.v2"));
}

#[tokio::test]
async fn a_peer_that_pings_and_never_reads_holds_bounded_output() {
    // The server's output is bounded at 16 KiB; the raw client floods Pings and reads nothing.
    let bound = 16 * 1024;
    let config = Config::default().max_write_buffer(bound).write_timeout(None);
    let (mut server, mut raw) = server_and_raw_client(config).await;
    let ping = client_frames(|c| c.ping(&[0x42; 125]).unwrap());
    let reader = tokio::spawn(async move {
        // The server's read answers pings while it waits; it never gets a message.
        let got = server.read(0, Duration::from_secs(3)).await;
        (server, got)
    });
    let mut sent = 0usize;
    let started = std::time::Instant::now();
    // Bounded: 200,000 pings (26 MB), 10 s, or a write that waits 1 s (the server stopped
    // reading: the kernel's buffers are full both ways).
    while sent < 200_000 && started.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_secs(1), raw.write_all(&ping)).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        sent += 1;
    }
    let (server, got) = reader.await.unwrap();
    assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
    // Whatever the number of pings, the queued output stays near the bound: the socket stops
    // reading once over it, and a long output holds one Pong (the latest), not one per Ping.
    assert!(
        server.buffered_amount() <= bound + ws_proto::PONG_QUEUE_MAX + 64 * 1024,
        "{} bytes queued after {sent} pings",
        server.buffered_amount()
    );
    assert!(sent > 1000, "only {sent} pings were sent");
}

#[tokio::test]
async fn a_peer_that_accepts_no_bytes_is_given_up_after_the_write_timeout() {
    let config = Config::default().write_timeout(Some(Duration::from_millis(300)));
    let (mut server, raw) = server_and_raw_client(config).await;
    // The client reads nothing: the server's writes fill the kernel's buffers, then stall.
    let chunk = vec![0x5A; 64 * 1024];
    let started = std::time::Instant::now();
    let outcome = loop {
        assert!(started.elapsed() < T, "never gave up");
        match server.write_binary(&chunk).await {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    match outcome {
        Error::Closed { code, reason } => {
            assert_eq!(code, CloseCode::ABNORMAL);
            assert_eq!(reason, "write timeout");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.is_closed());
    assert_eq!(server.buffered_amount(), 0, "its output is freed");
    // A read after that says Closed at once.
    assert!(matches!(server.read(0, T).await, Err(Error::Closed { .. })));
    drop(raw);
}

#[tokio::test]
async fn a_waiting_read_gives_up_a_peer_that_accepts_no_bytes() {
    // A write bound high enough that 32 MiB queue without waiting: more than the kernel's
    // buffers take.
    let config = Config::default().write_timeout(Some(Duration::from_millis(300))).max_write_buffer(64 << 20);
    let (mut server, raw) = server_and_raw_client(config).await;
    let chunk = vec![1u8; 64 * 1024];
    for _ in 0..512 {
        server.write_binary(&chunk).await.unwrap();
    }
    let got = tokio::time::timeout(T, server.read(0, Duration::from_secs(60))).await.unwrap();
    match got {
        Err(Error::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (CloseCode::ABNORMAL, "write timeout"))
        }
        other => panic!("{other:?}"),
    }
    drop(raw);
}

#[tokio::test]
async fn stream_and_sink_echo_then_end_with_a_normal_close() {
    use futures_util::{SinkExt, StreamExt};
    let (mut server, mut client) = pair().await;
    let echo = tokio::spawn(async move {
        let mut echoed = 0;
        // The server as a Stream of messages and a Sink of them: echo until the client
        // closes (the stream then ends, no error).
        while let Some(msg) = server.next().await {
            server.send(msg.unwrap()).await.unwrap();
            echoed += 1;
        }
        (echoed, server.close_info().map(|(c, r)| (c, r.to_string())))
    });
    client.send(Message::Text("one".into())).await.unwrap();
    client.send(Message::Binary(vec![2u8; 100_000].into())).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap().as_text(), Some("one"));
    assert_eq!(client.next().await.unwrap().unwrap().len(), 100_000);
    // Sink::close sends Close(1000); the client's stream ends once the server answered.
    SinkExt::close(&mut client).await.unwrap();
    assert!(tokio::time::timeout(T, client.next()).await.unwrap().is_none());
    assert!(client.next().await.is_none(), "an ended stream stays ended");
    let (echoed, info) = tokio::time::timeout(T, echo).await.unwrap().unwrap();
    assert_eq!(echoed, 2);
    assert_eq!(info, Some((CloseCode::NORMAL, String::new())));
}

#[tokio::test]
async fn a_stream_reports_a_protocol_error_once_then_ends() {
    use futures_util::StreamExt;
    let (mut server, mut raw) = server_and_raw_client(Config::default()).await;
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap(); // unmasked: 1002
    match tokio::time::timeout(T, server.next()).await.unwrap() {
        Some(Err(Error::Protocol { code, .. })) => assert_eq!(code, CloseCode::PROTOCOL),
        other => panic!("{other:?}"),
    }
    assert_eq!(read_close_code(&mut raw).await, 1002);
    assert!(server.next().await.is_none());
}
