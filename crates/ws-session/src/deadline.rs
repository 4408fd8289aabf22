//! `Deadline`: when a read stops waiting.

use std::time::Duration;

use tokio::time::Instant;

/// When a read stops waiting: a fixed instant, or a timeout that starts when the read first
/// has to wait. A read that finds its message already buffered (pipelined input, the rest of
/// a burst) then never reads the clock, and the difference from starting the timeout at the
/// call is the time spent parsing what was buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(DeadlineKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeadlineKind {
    At(Instant),
    /// Nanoseconds (a `Duration` would make the type 24 bytes instead of 16, and a waiting
    /// read holds one).
    After(u64),
}

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline(DeadlineKind::At(instant))
    }

    /// A deadline `timeout` after the read first has to wait (timeouts past a year count as
    /// a year).
    pub fn after(timeout: Duration) -> Self {
        Deadline(DeadlineKind::After(timeout.min(MAX_TIMEOUT).as_nanos() as u64))
    }

    /// The instant, fixing it from the clock now if it was a timeout not yet started.
    pub fn instant(&mut self) -> Instant {
        match self.0 {
            DeadlineKind::At(at) => at,
            DeadlineKind::After(timeout) => {
                let at = Instant::now() + Duration::from_nanos(timeout);
                self.0 = DeadlineKind::At(at);
                at
            }
        }
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Self {
        Deadline::at(instant)
    }
}

/// The longest timeout a read keeps (a year: "forever" without overflowing `Instant`).
const MAX_TIMEOUT: Duration = Duration::from_secs(86400 * 365);
