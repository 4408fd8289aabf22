//! Wakes for frames sent to many sockets, held back for a scheduler pass or a few.
//!
//! A message sent to a room queues its frame in every member's mailbox at once, but waking the
//! members at once would have each write that one frame: the messages other clients sent in
//! the same instant are still unread in their sockets, and the runtime reaches them only after
//! the thousands of members it just woke. So the wakes wait while the runtime polls its I/O
//! driver and runs what that makes ready (tokio's `yield_now` resumes a task only after that
//! poll), and again while those tasks keep sending, up to [`MAX_PASSES`]. Then every member
//! wakes once and writes everything queued for it in one system call. Nothing waits on a
//! timer: with nothing else to run, the wakes go out on the runtime's next turn.

use std::mem;
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// Most scheduler passes the wakes wait for while more frames keep being queued.
pub(crate) const MAX_PASSES: usize = 4;

/// The wakes held back, shared by everything that sends through one registry.
#[derive(Default)]
pub(crate) struct DeferredWakes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    wakers: Vec<Waker>,
    /// Is a task on its way to wake them?
    scheduled: bool,
    /// Counts the batches added, so the waking task can tell whether more came in.
    batches: u64,
}

impl DeferredWakes {
    /// Holds `wakers` back until the next flush; starts one if none is on its way. Outside a
    /// tokio runtime there is no pass to wait for, and they wake now.
    pub(crate) fn add(self: &Arc<Self>, wakers: Vec<Waker>) {
        if wakers.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            wakers.into_iter().for_each(Waker::wake);
            return;
        };
        let start = {
            let mut state = self.lock();
            state.batches += 1;
            if state.wakers.is_empty() {
                state.wakers = wakers;
            } else {
                state.wakers.extend(wakers);
            }
            !mem::replace(&mut state.scheduled, true)
        };
        if start {
            // The guard wakes them even if the task never runs (its runtime shutting down).
            let guard = WakeOnDrop(self.clone());
            runtime.spawn(async move {
                let mut seen = guard.0.lock().batches;
                for _ in 0..MAX_PASSES {
                    tokio::task::yield_now().await;
                    let now = guard.0.lock().batches;
                    if now == seen {
                        break;
                    }
                    seen = now;
                }
                drop(guard);
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes everything held back.
    fn flush(&self) {
        let wakers = {
            let mut state = self.lock();
            state.scheduled = false;
            mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

struct WakeOnDrop(Arc<DeferredWakes>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_wait_for_a_pass_then_go_out_once() {
        let wakes = Arc::new(DeferredWakes::default());
        let (count, waker) = counter();
        wakes.add(vec![waker.clone()]);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "woken before the runtime's next pass");
        // What other tasks add meanwhile goes out with it.
        wakes.add(vec![waker]);
        for _ in 0..100 {
            if count.0.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        let state = wakes.lock();
        assert!(!state.scheduled && state.wakers.is_empty(), "nothing left held back");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn steady_sending_delays_the_wakes_a_bounded_number_of_passes() {
        let wakes = Arc::new(DeferredWakes::default());
        let (count, waker) = counter();
        let mut passes = 0;
        wakes.add(vec![waker.clone()]);
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(passes < 10 * MAX_PASSES, "still not woken after {passes} passes");
            wakes.add(vec![waker.clone()]);
            tokio::task::yield_now().await;
            passes += 1;
        }
        assert!(passes <= MAX_PASSES + 1, "woken after {passes} passes");
    }

    #[test]
    fn outside_a_runtime_they_wake_at_once() {
        let wakes = Arc::new(DeferredWakes::default());
        let (count, waker) = counter();
        wakes.add(vec![waker]);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_runtime_dropped_before_the_flush_still_wakes_them() {
        let (count, waker) = counter();
        let wakes = Arc::new(DeferredWakes::default());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { wakes.add(vec![waker]) });
        drop(runtime);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!wakes.lock().scheduled);
    }
}
