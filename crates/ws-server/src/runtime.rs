//! The tokio runtime this server is meant to run on.

/// A tokio multi-thread runtime builder set up for many busy sockets: all drivers enabled,
/// and the scheduler alternating between its global queue and a worker's local queue
/// (`global_queue_interval(2)`).
///
/// Why: when a thousand sockets become readable at once on one worker, their wakeups
/// overflow the worker's local queue (256 tasks); tokio (1.54, the version in Cargo.lock)
/// then moves the newest half of it to the global queue and keeps the oldest 128 tasks local.
/// - With the default interval (31) the worker mostly serves its local queue, and the
///   overflowed sockets wait: p99 ~150 ms at 1000 connections x 20 B on one core, while the
///   median is ~2 ms.
/// - With an interval of 1 (the global queue first on every tick) the 128 tasks kept local
///   run only once the global queue is empty, which under a steady load can take seconds:
///   groups of exactly 128 sockets got no answer for 0.8-5 s while p99 looked fine.
/// - With 2, both queues are served in turn: every socket is answered within a few rounds
///   (measured here: p99 ~18 ms, max ~23 ms at 1000 x 20 B on one core, at the same CPU
///   cost per message). wsload's `--max-wait` turns any answer slower than a bound into an
///   error, and CI runs it at 1000 connections.
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     ws_server::runtime_builder().build()?.block_on(async {
///         // build and run the Server here
///         Ok(())
///     })
/// }
/// ```
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().global_queue_interval(2);
    builder
}
