//! The connection limits, counted with two atomics rather than a permit and a task-tracker
//! token in every socket's task: an idle socket's task holds only the server's shared state,
//! as a [`Slot`] that gives its place back when dropped (and wakes a shutdown waiting for the
//! last one).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::server::Shared;

/// How many connections are open and how many are in their handshake, against the limits.
pub(crate) struct Slots {
    open: AtomicUsize,
    pending: AtomicUsize,
    max_open: usize,
    max_pending: usize,
    gone: Notify,
}

impl Slots {
    pub(crate) fn new(max_open: usize, max_pending: usize) -> Self {
        Slots {
            open: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            max_open,
            max_pending,
            gone: Notify::new(),
        }
    }

    /// Connections open now (handshakes included, until their task ends).
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is left.
    pub(crate) async fn all_gone(&self) {
        loop {
            // Created before the check: `notify_waiters` wakes it even before it is polled.
            let gone = self.gone.notified();
            if self.open() == 0 {
                return;
            }
            gone.await;
        }
    }
}

/// Takes one place under `max` in `count`, or none.
fn take(count: &AtomicUsize, max: usize) -> bool {
    if count.fetch_add(1, Ordering::AcqRel) >= max {
        count.fetch_sub(1, Ordering::AcqRel);
        return false;
    }
    true
}

/// One connection's place under `max_connections`, held by its tasks for its whole life; it
/// is also how they reach the server's shared state.
pub(crate) struct Slot(Arc<Shared>);

impl Slot {
    pub(crate) fn take(shared: &Arc<Shared>) -> Option<Slot> {
        take(&shared.slots.open, shared.slots.max_open).then(|| Slot(shared.clone()))
    }
}

impl Deref for Slot {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.slots.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.slots.gone.notify_waiters();
        }
    }
}

/// One place under `max_pending_handshakes`, held until the handshake ends.
pub(crate) struct Pending(Arc<Shared>);

impl Pending {
    pub(crate) fn take(slot: &Slot) -> Option<Pending> {
        take(&slot.0.slots.pending, slot.0.slots.max_pending).then(|| Pending(slot.0.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.slots.pending.fetch_sub(1, Ordering::AcqRel);
    }
}
