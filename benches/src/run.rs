//! One load run: open the connections (a bounded number at a time), warm up, measure, stop and
//! close them, all on a single-threaded runtime with one task per connection.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::LocalSet;

use crate::broadcast::ChatLines;
use crate::chat::chat_payload;
use crate::deflate::{DeflateOffer, chromium_offer};
use crate::echo::Lines;
use crate::message::Event;
use crate::options::{Mode, Options, Payload};
use crate::payload::{EchoMessages, echo_payload};
use crate::process;
use crate::report::Report;
use crate::socket::{Connector, Failure, Socket, wire};
use crate::tally::{Phase, Tally};
use crate::{broadcast, connect, echo, tls};

/// Handshakes in progress at once: enough to open thousands of connections in a second,
/// few enough not to overflow the server's accept backlog.
const OPENING_AT_ONCE: usize = 128;
/// How long one connection may take to open (queueing included).
const OPEN_LIMIT: Duration = Duration::from_secs(30);
/// How long the closing handshakes may take, all together.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);
/// Idle mode: how long the connections sit before the server's memory is read again.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// The longest a run with these options can last; past it, the caller should give up.
pub fn deadline(options: &Options) -> Duration {
    let load = match options.mode {
        Mode::Idle => IDLE_SETTLE,
        _ => options.warmup + options.duration,
    };
    OPEN_LIMIT + load + CLOSE_LIMIT + Duration::from_secs(10)
}

/// Runs the load `options` describe and reports what it measured.
pub fn run(options: Options) -> std::io::Result<Report> {
    let tls = match &options.ca {
        Some(ca) if options.tls => {
            let pem = std::fs::read(ca)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", ca.display())))?;
            Some(tls::client_config(&pem)?)
        }
        _ => None,
    };
    let deflate = options
        .deflate
        .then(|| DeflateOffer { config: chromium_offer(), required: !options.deflate_optional });
    let connector = Connector::new(&options.target, tls)?.with_deflate(deflate);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(LocalSet::new().block_on(&runtime, run_local(Rc::new(options), Rc::new(connector))))
}

/// Pause between the last handshake and the first broadcast round.
const BROADCAST_SETTLE: Duration = Duration::from_secs(1);

async fn run_local(options: Rc<Options>, connector: Rc<Connector>) -> Report {
    let tally = Rc::new(Tally::new());
    let pattern_echo = options.mode == Mode::Echo && options.payload == Payload::Pattern;
    let echo_messages = Rc::new(EchoMessages::new(if pattern_echo { options.size } else { 0 }));
    let chat_lines = (options.mode == Mode::Broadcast && options.payload == Payload::Chat)
        .then(|| Rc::new(ChatLines::new(options.size, options.senders())));
    let opening = Rc::new(Semaphore::new(OPENING_AT_ONCE));
    let rss_before = options.server_pid.and_then(|pid| process::rss_bytes(pid).ok());

    let started = Instant::now();
    for _ in 0..options.connections {
        let (options, connector, tally, echo_messages, opening) =
            (options.clone(), connector.clone(), tally.clone(), echo_messages.clone(), opening.clone());
        let chat_lines = chat_lines.clone();
        tokio::task::spawn_local(async move {
            if options.mode == Mode::Connect {
                // Connectors open nothing before the load starts.
                tally.bump(&tally.settled);
                let phase = tally.phase.subscribe();
                connect::drive(&options.target, &connector, OPEN_LIMIT, CLOSE_LIMIT, &tally, phase).await;
            } else {
                connection(&options, &connector, &tally, &echo_messages, chat_lines.as_deref(), &opening)
                    .await;
            }
            tally.bump(&tally.finished);
        });
    }
    while tally.settled.get() < options.connections {
        tally.changed.notified().await;
    }
    let connect_time = started.elapsed();

    let mut report = Report::new(&options);
    report.connected = tally.connected.get();
    report.connect_s = connect_time.as_secs_f64();
    tally.receivers.set(tally.connected.get());
    if options.mode == Mode::Broadcast {
        // A server joins a socket to its room after answering 101 (ours in `server`, the
        // baseline when it registers the peer): let every socket get there before round 1,
        // or a round whose messages went out first would never complete.
        tokio::time::sleep(BROADCAST_SETTLE).await;
        tally.start_round(1);
    }
    tally.phase.send_replace(Phase::Running);

    if options.mode == Mode::Idle {
        tokio::time::sleep(IDLE_SETTLE).await;
        report.rss_before = rss_before;
        report.rss_after = options.server_pid.and_then(|pid| process::rss_bytes(pid).ok());
    } else {
        tokio::time::sleep(options.warmup).await;
        let server_cpu = options.server_pid.map(|pid| process::cpu_time(Some(pid)));
        let own_cpu = process::cpu_time(None).ok();
        let window = Instant::now();
        let wire_before = wire();
        tally.measuring.set(true);
        tokio::time::sleep(options.duration).await;
        tally.measuring.set(false);
        let wire_after = wire();
        report.window_s = window.elapsed().as_secs_f64();
        report.wire_read = wire_after.read - wire_before.read;
        report.wire_written = wire_after.written - wire_before.written;
        let server_cpu_after = options.server_pid.map(|pid| process::cpu_time(Some(pid)));
        if let (Some(Ok(before)), Some(Ok(after))) = (server_cpu, server_cpu_after) {
            report.server_cpu_s = Some((after - before).as_secs_f64());
        }
        if let (Some(before), Ok(after)) = (own_cpu, process::cpu_time(None)) {
            report.wsload_cpu_s = Some((after - before).as_secs_f64());
        }
    }

    tally.phase.send_replace(Phase::Stopping);
    let closing = tokio::time::timeout(CLOSE_LIMIT, async {
        while tally.finished.get() < options.connections {
            tally.changed.notified().await;
        }
    });
    if closing.await.is_err() {
        tally.close_error(format_args!(
            "{} connections not closed after {CLOSE_LIMIT:?}",
            options.connections - tally.finished.get()
        ));
    }
    report.fill(&tally);
    report
}

/// One connection's life: open, wait for the load to start, run it, close.
async fn connection(
    options: &Options,
    connector: &Connector,
    tally: &Tally,
    echo_messages: &EchoMessages,
    chat_lines: Option<&ChatLines>,
    opening: &Semaphore,
) {
    let opened = tokio::time::timeout(OPEN_LIMIT, async {
        let _permit = opening.acquire().await.expect("the semaphore stays open");
        Socket::connect(&options.target, connector).await
    })
    .await;
    let mut socket = match opened {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => {
            tally.error(format_args!("connect: {e}"));
            return tally.bump(&tally.settled);
        }
        Err(_) => {
            tally.error(format_args!("connect: no upgrade within {OPEN_LIMIT:?}"));
            return tally.bump(&tally.settled);
        }
    };
    let index = tally.connected.get();
    tally.connected.set(index + 1);
    if let Some(params) = socket.deflate() {
        tally.deflate_agreed.set(tally.deflate_agreed.get() + 1);
        tally.deflate_params.borrow_mut().get_or_insert_with(|| params.response());
    }
    if options.idle_echo {
        let message = match options.payload {
            Payload::Pattern => echo_payload(options.size, 0),
            Payload::Chat => chat_payload(options.size, index, 0),
        };
        match tokio::time::timeout(OPEN_LIMIT, echo_once(&mut socket, &message)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tally.error(format_args!("idle echo: {e}")),
            Err(_) => tally.error(format_args!("idle echo: no answer within {OPEN_LIMIT:?}")),
        }
    }
    tally.bump(&tally.settled);

    let mut phase = tally.phase.subscribe();
    let _ = phase.wait_for(|p| *p != Phase::Connecting).await;
    let stopped = async move {
        let _ = phase.wait_for(|p| *p == Phase::Stopping).await;
    };
    let driven = match options.mode {
        Mode::Echo => {
            let lines = match options.payload {
                Payload::Pattern => Lines::Pattern(echo_messages),
                Payload::Chat => Lines::Chat { size: options.size, source: index },
            };
            echo::drive(&mut socket, lines, options.inflight, options.max_wait, tally, stopped).await
        }
        Mode::Broadcast => {
            let (senders, size) = (options.senders(), options.size);
            let result =
                broadcast::drive(&mut socket, index, senders, size, chat_lines, tally, stopped).await;
            if result.is_err() {
                tally.receiver_lost();
            }
            result
        }
        Mode::Idle => {
            stopped.await;
            Ok(())
        }
        Mode::Connect => unreachable!("connectors run connect::drive"),
    };
    match driven {
        Ok(()) => {
            if let Err(e) = socket.close(CLOSE_LIMIT).await {
                tally.close_error(e);
            }
        }
        Err(e) => tally.error(e),
    }
}

/// Sends `message` and waits for it to come back intact (`--idle-echo`).
async fn echo_once(socket: &mut Socket, message: &[u8]) -> Result<(), String> {
    socket.outbox().text(message, None);
    socket.flush().await.map_err(|e| e.to_string())?;
    let (mut echo, mut done) = (Vec::new(), false);
    while !done {
        socket
            .read(|event, _| match event {
                Event::Data(bytes) => echo.extend_from_slice(bytes),
                Event::End => done = true,
                _ => {}
            })
            .await
            .map_err(|e: Failure| e.to_string())?;
        socket.flush().await.map_err(|e| e.to_string())?;
    }
    if echo != message {
        return Err(format!("the echo differs ({} bytes back, {} sent)", echo.len(), message.len()));
    }
    Ok(())
}
