//! Echo load: each connection keeps `inflight` messages out; every echo is checked byte for
//! byte against what was sent, timed, and answered with the next message. Pattern payloads
//! cycle through a few prebuilt ones; chat lines are made per message, each different.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::chat::chat_payload;
use crate::frame::TEXT;
use crate::message::Event;
use crate::payload::EchoMessages;
use crate::socket::{Failure, Outbox, Socket};
use crate::tally::Tally;

/// What a connection sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lines<'a> {
    /// The prebuilt pattern payloads, in turn.
    Pattern(&'a EchoMessages),
    /// Chat lines of about this size, from this connection (its index).
    Chat { size: usize, source: usize },
}

/// One connection's side of the echo exchange.
struct Exchange<'a> {
    lines: Lines<'a>,
    /// Chat: the lines in flight, oldest first.
    chat_sent: VecDeque<Vec<u8>>,
    tally: &'a Tally,
    /// When each message in flight was sent, oldest first.
    sent: VecDeque<Instant>,
    next_send: usize,
    next_echo: usize,
    /// Bytes of the current echo checked so far, and whether all matched.
    offset: usize,
    intact: bool,
    /// Echoes counted in the measured window: none means the connection stalled.
    in_window: u64,
    /// An echo slower than this is an error (`--max-wait`).
    max_wait: Option<Duration>,
    /// When the current read's bytes arrived: the clock is read once per read, not once per
    /// echo (with many echoes per read it would be a good part of the generator's work).
    arrived: Option<Instant>,
}

impl Exchange<'_> {
    fn expected(&self) -> &[u8] {
        match self.lines {
            Lines::Pattern(messages) => &messages.payloads[self.next_echo % messages.payloads.len()],
            Lines::Chat { .. } => self.chat_sent.front().map_or(&[], Vec::as_slice),
        }
    }

    fn send_next(&mut self, out: &mut Outbox<'_>, now: Instant) {
        match self.lines {
            Lines::Pattern(messages) => {
                let i = self.next_send % messages.frames.len();
                out.text(&messages.payloads[i], Some(&messages.frames[i]));
            }
            Lines::Chat { size, source } => {
                let line = chat_payload(size, source, self.next_send as u32);
                out.text(&line, None);
                self.chat_sent.push_back(line);
            }
        }
        self.sent.push_back(now);
        self.next_send += 1;
        self.tally.sent_one();
    }

    fn on(&mut self, event: Event<'_>, out: &mut Outbox<'_>) {
        match event {
            Event::Start(opcode) => {
                self.offset = 0;
                self.intact = true;
                if opcode != TEXT {
                    self.tally.error(format_args!("echo with opcode {opcode:#x}, expected text"));
                    self.intact = false;
                }
            }
            Event::Data(bytes) => {
                let end = self.offset + bytes.len();
                if self.expected().get(self.offset..end) != Some(bytes) {
                    self.intact = false;
                }
                self.offset = end;
            }
            Event::End => {
                let now = *self.arrived.get_or_insert_with(Instant::now);
                if self.offset != self.expected().len() {
                    self.intact = false;
                }
                let Some(sent) = self.sent.pop_front() else {
                    self.tally.error("an echo of nothing: more messages came back than were sent");
                    return;
                };
                let waited = now - sent;
                if let Some(max) = self.max_wait
                    && waited > max
                {
                    self.tally.error(format_args!(
                        "echo #{} came back after {waited:?}, over --max-wait {max:?}",
                        self.next_echo
                    ));
                }
                if !self.intact {
                    self.tally.error(format_args!(
                        "echo #{} differs from what was sent ({} bytes back, {} sent)",
                        self.next_echo,
                        self.offset,
                        self.expected().len()
                    ));
                } else if self.tally.measuring.get() {
                    self.tally.record_latency(waited);
                    self.tally.delivered();
                    self.in_window += 1;
                }
                self.next_echo += 1;
                self.chat_sent.pop_front();
                self.send_next(out, now);
            }
            Event::Ping(_) | Event::Pong | Event::Close(_) => {} // handled by the socket
        }
    }
}

/// Runs the echo exchange on `socket` until `stopped` resolves; `Err` if the connection broke.
pub(crate) async fn drive(
    socket: &mut Socket,
    lines: Lines<'_>,
    inflight: usize,
    max_wait: Option<Duration>,
    tally: &Tally,
    stopped: impl Future<Output = ()>,
) -> Result<(), Failure> {
    let mut exchange = Exchange {
        lines,
        chat_sent: VecDeque::with_capacity(inflight),
        tally,
        sent: VecDeque::with_capacity(inflight),
        next_send: 0,
        next_echo: 0,
        offset: 0,
        intact: true,
        in_window: 0,
        max_wait,
        arrived: None,
    };
    let now = Instant::now();
    for _ in 0..inflight {
        exchange.send_next(&mut socket.outbox(), now);
    }
    socket.flush().await?;
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => {
                if exchange.in_window == 0 {
                    tally.error("stalled: no echo during the measured window");
                }
                if let (Some(max), Some(sent)) = (max_wait, exchange.sent.front()) {
                    let waited = sent.elapsed();
                    if waited > max {
                        tally.error(format_args!(
                            "echo #{} still missing after {waited:?}, over --max-wait {max:?}",
                            exchange.next_echo
                        ));
                    }
                }
                return Ok(());
            }
            read = socket.read(|event, out| exchange.on(event, out)) => {
                read?;
                exchange.arrived = None;
                socket.flush().await?;
            }
        }
    }
}
