//! Broadcast load, in rounds: each sender sends one message tagged with its index and the
//! round; every connection checks each message it receives (tag, length, every byte) and the
//! next round starts once every connection has all of the round's messages. Chat lines are
//! checked whole, against the line the receiver makes from the tag itself.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use crate::chat::{chat_payload, chat_tag};
use crate::frame::TEXT;
use crate::message::Event;
use crate::options::BROADCAST_TAG;
use crate::payload::{BroadcastFrame, broadcast_payload, broadcast_tag};
use crate::socket::{Failure, Socket};
use crate::tally::Tally;

/// Broadcast with chat lines: each sender's line of the current round, made once for the
/// sender and every receiver (all on one thread).
#[derive(Debug)]
pub(crate) struct ChatLines {
    size: usize,
    /// Per sender, its latest line.
    lines: RefCell<Vec<Option<RoundLine>>>,
}

/// A sender's line and the round it is for.
#[derive(Debug, Clone)]
struct RoundLine {
    round: u32,
    line: Rc<[u8]>,
}

impl ChatLines {
    pub(crate) fn new(size: usize, senders: usize) -> Self {
        ChatLines { size, lines: RefCell::new(vec![None; senders]) }
    }

    /// The line `sender` sends in `round`.
    fn line(&self, sender: usize, round: u32) -> Rc<[u8]> {
        let mut lines = self.lines.borrow_mut();
        match &lines[sender] {
            Some(known) if known.round == round => known.line.clone(),
            _ => {
                let line: Rc<[u8]> = chat_payload(self.size, sender, round).into();
                lines[sender] = Some(RoundLine { round, line: line.clone() });
                line
            }
        }
    }
}

/// One connection's receiving side.
struct Receiver<'a> {
    tally: &'a Tally,
    /// What every pattern payload holds after its tag.
    template: &'a [u8],
    /// Chat lines instead of pattern payloads, and the line being received.
    chat: Option<&'a ChatLines>,
    line: Vec<u8>,
    senders: usize,
    round: u32,
    /// Senders heard from this round, one bit each.
    heard: Vec<u64>,
    heard_count: usize,
    tag: [u8; BROADCAST_TAG],
    offset: usize,
    intact: bool,
    /// Messages delivered in the measured window: none means the connection stalled.
    in_window: u64,
}

impl Receiver<'_> {
    fn on(&mut self, event: Event<'_>) {
        match event {
            Event::Start(opcode) => {
                self.offset = 0;
                self.line.clear();
                self.intact = opcode == TEXT;
                if !self.intact {
                    self.tally.error(format_args!("broadcast with opcode {opcode:#x}, expected text"));
                }
            }
            Event::Data(bytes) if self.chat.is_some() => self.line.extend_from_slice(bytes),
            Event::End if self.chat.is_some() => self.line_end(),
            Event::Data(mut bytes) => {
                if self.offset < BROADCAST_TAG {
                    let n = (BROADCAST_TAG - self.offset).min(bytes.len());
                    self.tag[self.offset..self.offset + n].copy_from_slice(&bytes[..n]);
                    self.offset += n;
                    bytes = &bytes[n..];
                }
                let end = self.offset + bytes.len();
                if self.template.get(self.offset..end) != Some(bytes) {
                    self.intact = false;
                }
                self.offset = end;
            }
            Event::End => self.message_end(),
            Event::Ping(_) | Event::Pong | Event::Close(_) => {} // handled by the socket
        }
    }

    fn message_end(&mut self) {
        let tag = if self.offset == self.template.len() { broadcast_tag(&self.tag) } else { None };
        self.heard(tag, self.offset);
    }

    fn line_end(&mut self) {
        let tag = chat_tag(&self.line).filter(|&(s, _)| s < self.senders);
        if let (Some((sender, round)), Some(lines)) = (tag, self.chat) {
            self.intact &= *lines.line(sender, round) == self.line[..];
        }
        self.heard(tag, self.line.len());
    }

    /// Counts the message tagged `tag` (`len` bytes long), if it is one of this round's.
    fn heard(&mut self, tag: Option<(usize, u32)>, len: usize) {
        let Some((sender, round)) = tag.filter(|&(s, _)| s < self.senders) else {
            return self.tally.error(format_args!("broadcast of {len} bytes with no valid tag"));
        };
        if round != self.round {
            return self.tally.error(format_args!("message of round {round} during round {}", self.round));
        }
        let (word, bit) = (sender / 64, 1u64 << (sender % 64));
        if self.heard[word] & bit != 0 {
            return self.tally.error(format_args!("second message from sender {sender} in round {round}"));
        }
        self.heard[word] |= bit;
        if self.intact {
            self.tally.delivered();
            if self.tally.measuring.get() {
                self.in_window += 1;
            }
        } else {
            // Counted as heard all the same, so that the rounds go on.
            self.tally.error(format_args!("message from sender {sender}, round {round}, corrupted"));
        }
        self.heard_count += 1;
        if self.heard_count == self.senders {
            self.heard.fill(0);
            self.heard_count = 0;
            self.round += 1;
            self.tally.round_received();
        }
    }
}

/// Runs connection `index` of a broadcast run until `stopped` resolves; connections below
/// `senders` also send one message per round (a chat line from `chat`, if given). `Err` if
/// the connection broke.
pub(crate) async fn drive(
    socket: &mut Socket,
    index: usize,
    senders: usize,
    size: usize,
    chat: Option<&ChatLines>,
    tally: &Tally,
    stopped: impl Future<Output = ()>,
) -> Result<(), Failure> {
    let template = if chat.is_some() { Vec::new() } else { broadcast_payload(size, 0, 0) };
    let mut receiver = Receiver {
        tally,
        template: &template,
        chat,
        line: Vec::new(),
        senders,
        round: *tally.round.borrow(),
        heard: vec![0; senders.div_ceil(64)],
        heard_count: 0,
        tag: [0; BROADCAST_TAG],
        offset: 0,
        intact: true,
        in_window: 0,
    };
    // A pattern sender's frame is built once (chat lines come from `chat`).
    let mut frame = (index < senders && chat.is_none()).then(|| BroadcastFrame::new(size, index));
    let sender = index < senders;
    let mut rounds = tally.round.subscribe();
    // A sender sends for the round that is current when it starts, then for each new one.
    rounds.mark_changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => {
                if receiver.in_window == 0 {
                    tally.error("stalled: no message delivered during the measured window");
                }
                return Ok(());
            }
            changed = rounds.changed(), if sender => {
                if changed.is_err() {
                    return Ok(());
                }
                let round = *rounds.borrow_and_update();
                match (frame.as_mut(), chat) {
                    (Some(frame), _) => {
                        frame.for_round(round);
                        socket.outbox().text(frame.payload(), Some(frame.frame()));
                    }
                    (None, Some(chat)) => socket.outbox().text(&chat.line(index, round), None),
                    (None, None) => {}
                }
                tally.sent_one();
                socket.flush().await?;
            }
            read = socket.read(|event, _| receiver.on(event)) => {
                read?;
                socket.flush().await?;
            }
        }
    }
}
