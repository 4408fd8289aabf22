//! Broadcast load, in rounds: each sender sends one message tagged with its index and the
//! round; every connection checks each message it receives (tag, length, every byte) and the
//! next round starts once every connection has all of the round's messages.

use std::future::Future;

use crate::frame::TEXT;
use crate::message::Event;
use crate::options::BROADCAST_TAG;
use crate::payload::{BroadcastFrame, broadcast_payload, broadcast_tag};
use crate::socket::{Failure, Socket};
use crate::tally::Tally;

/// One connection's receiving side.
struct Receiver<'a> {
    tally: &'a Tally,
    /// What every payload holds after its tag.
    template: &'a [u8],
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
                self.intact = opcode == TEXT;
                if !self.intact {
                    self.tally.error(format_args!("broadcast with opcode {opcode:#x}, expected text"));
                }
            }
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
        let Some((sender, round)) = tag.filter(|&(s, _)| s < self.senders) else {
            return self.tally.error(format_args!("broadcast of {} bytes with no valid tag", self.offset));
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
/// `senders` also send one message per round. `Err` if the connection broke.
pub(crate) async fn drive(
    socket: &mut Socket,
    index: usize,
    senders: usize,
    size: usize,
    tally: &Tally,
    stopped: impl Future<Output = ()>,
) -> Result<(), Failure> {
    let template = broadcast_payload(size, 0, 0);
    let mut receiver = Receiver {
        tally,
        template: &template,
        senders,
        round: *tally.round.borrow(),
        heard: vec![0; senders.div_ceil(64)],
        heard_count: 0,
        tag: [0; BROADCAST_TAG],
        offset: 0,
        intact: true,
        in_window: 0,
    };
    let mut frame = (index < senders).then(|| BroadcastFrame::new(size, index));
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
            changed = rounds.changed(), if frame.is_some() => {
                if changed.is_err() {
                    return Ok(());
                }
                let round = *rounds.borrow_and_update();
                if let Some(frame) = frame.as_mut() {
                    socket.send(frame.for_round(round)).await?;
                }
            }
            read = socket.read(|event, _| receiver.on(event)) => {
                read?;
                socket.flush().await?;
            }
        }
    }
}
