//! What every connection task of a run shares: the run's phase, its counters and histograms.
//! All connections run on one thread, so these are plain cells.

use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Notify, watch};

/// How many error descriptions are kept for the report.
const NOTES: usize = 5;
/// The longest latency told apart from longer ones (the longest window `--duration` allows).
const LATENCY_MAX: Duration = Duration::from_secs(3600);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connections are being opened.
    Connecting,
    /// Load is flowing (warm-up, then the measured window).
    Running,
    /// Connections are to stop sending and close.
    Stopping,
}

/// The run's shared state.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) phase: watch::Sender<Phase>,
    /// True during the measured window: only then are messages and latencies counted.
    pub(crate) measuring: Cell<bool>,
    pub(crate) messages: Cell<u64>,
    /// Messages sent in the measured window.
    pub(crate) sent: Cell<u64>,
    pub(crate) errors: Cell<u64>,
    pub(crate) close_errors: Cell<u64>,
    pub(crate) notes: RefCell<Vec<String>>,
    /// Echo: send → echo per message. Broadcast: first send → last delivery per round. In ns.
    pub(crate) latency: RefCell<Histogram<u64>>,
    pub(crate) connected: Cell<usize>,
    /// Connections opened or given up on; `changed` fires as it moves.
    pub(crate) settled: Cell<usize>,
    /// Connection tasks that have ended.
    pub(crate) finished: Cell<usize>,
    pub(crate) changed: Notify,
    /// Broadcast: the current round, which senders watch.
    pub(crate) round: watch::Sender<u32>,
    pub(crate) round_started: Cell<Instant>,
    /// Broadcast: connections still receiving, and how many have the whole current round.
    pub(crate) receivers: Cell<usize>,
    pub(crate) round_done: Cell<usize>,
    pub(crate) rounds: Cell<u64>,
    /// `--deflate`: connections that agreed to permessage-deflate, and the first agreement
    /// (as a server would answer it).
    pub(crate) deflate_agreed: Cell<usize>,
    pub(crate) deflate_params: RefCell<Option<String>>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            phase: watch::Sender::new(Phase::Connecting),
            measuring: Cell::new(false),
            messages: Cell::new(0),
            sent: Cell::new(0),
            errors: Cell::new(0),
            close_errors: Cell::new(0),
            notes: RefCell::new(Vec::new()),
            latency: RefCell::new(
                Histogram::new_with_bounds(1, LATENCY_MAX.as_nanos() as u64, 3).expect("valid bounds"),
            ),
            connected: Cell::new(0),
            settled: Cell::new(0),
            finished: Cell::new(0),
            changed: Notify::new(),
            round: watch::Sender::new(0),
            round_started: Cell::new(Instant::now()),
            receivers: Cell::new(0),
            round_done: Cell::new(0),
            rounds: Cell::new(0),
            deflate_agreed: Cell::new(0),
            deflate_params: RefCell::new(None),
        }
    }

    /// Counts an error and keeps the first few descriptions.
    pub(crate) fn error(&self, what: impl Display) {
        self.errors.set(self.errors.get() + 1);
        self.note(what);
    }

    /// Counts a failed closing handshake.
    pub(crate) fn close_error(&self, what: impl Display) {
        self.close_errors.set(self.close_errors.get() + 1);
        self.note(format_args!("close: {what}"));
    }

    fn note(&self, what: impl Display) {
        let mut notes = self.notes.borrow_mut();
        if notes.len() < NOTES {
            notes.push(what.to_string());
        }
    }

    /// Counts one delivered message if the window is open.
    pub(crate) fn delivered(&self) {
        if self.measuring.get() {
            self.messages.set(self.messages.get() + 1);
        }
    }

    /// Counts one message sent if the window is open.
    pub(crate) fn sent_one(&self) {
        if self.measuring.get() {
            self.sent.set(self.sent.get() + 1);
        }
    }

    /// Records one latency (echo or round).
    pub(crate) fn record_latency(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency.borrow_mut().saturating_record(ns);
    }

    pub(crate) fn bump(&self, counter: &Cell<usize>) {
        counter.set(counter.get() + 1);
        self.changed.notify_one();
    }

    /// Broadcast: one receiver has all of the current round's messages. When every receiver
    /// has, the round is timed and the next one starts (unless the run is stopping).
    pub(crate) fn round_received(&self) {
        self.round_done.set(self.round_done.get() + 1);
        self.maybe_next_round();
    }

    /// Broadcast: a receiver is gone; the round may now be complete without it.
    pub(crate) fn receiver_lost(&self) {
        self.receivers.set(self.receivers.get().saturating_sub(1));
        self.maybe_next_round();
    }

    fn maybe_next_round(&self) {
        if self.receivers.get() == 0 || self.round_done.get() < self.receivers.get() {
            return;
        }
        self.round_done.set(0);
        if self.measuring.get() {
            self.rounds.set(self.rounds.get() + 1);
            self.record_latency(self.round_started.get().elapsed());
        }
        if *self.phase.borrow() == Phase::Running {
            // Not in one expression: the borrow would still hold the lock `send_replace` takes.
            let next = *self.round.borrow() + 1;
            self.start_round(next);
        }
    }

    /// Broadcast: tells the senders to send for `round`.
    pub(crate) fn start_round(&self, round: u32) {
        self.round_started.set(Instant::now());
        self.round.send_replace(round);
    }
}
