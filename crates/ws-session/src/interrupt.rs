//! `Interrupt`: lets another task wake a socket's pending read.

use std::future::poll_fn;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

/// A flag another task raises to interrupt a socket's
/// [`read_interruptible`](crate::WebSocket::read_interruptible) (to have it send something
/// pushed from elsewhere, say). One task waits on it; any number may raise it. It costs a
/// few dozen bytes and no allocation until a waker is stored.
#[derive(Debug, Default)]
pub struct Interrupt {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Interrupt {
    /// An interrupt that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag and wakes the waiting task.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Raises the flag without waking the waiting task: returns its waker, for the caller to
    /// wake later (to gather what many tasks send before the socket acts on it). A task that
    /// polls in between sees the flag raised and need not wait for the wake.
    pub fn raise_deferred(&self) -> Option<Waker> {
        self.raised.store(true, Ordering::Release);
        self.waker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Is the flag raised?
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Lowers the flag; returns whether it was raised.
    pub fn clear(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Stores the waker to wake on `raise` (the caller checks `is_raised` after this).
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Waits until raised, and lowers the flag.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            self.register(cx.waker());
            if self.clear() { Poll::Ready(()) } else { Poll::Pending }
        })
        .await
    }
}
