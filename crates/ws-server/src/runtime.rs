//! The tokio runtime this server is meant to run on.

use tokio::runtime::Builder;

/// A tokio runtime builder set up for many busy sockets, all drivers enabled:
/// - when the process may use only one CPU (`taskset`, a cgroup CPU quota: whatever
///   [`std::thread::available_parallelism`] reports), tokio's **current-thread** scheduler,
///   whose run queue is a single FIFO: every ready socket is served in turn;
/// - otherwise the **multi-thread** scheduler, alternating between its global queue and a
///   worker's local queue (`global_queue_interval(2)`).
///
/// Why: when a thousand sockets become readable at once on one worker of the multi-thread
/// scheduler, their wakeups overflow the worker's local queue (256 tasks); tokio (1.54, the
/// version in Cargo.lock) then moves the newest half of it to the global queue and keeps the
/// oldest 128 tasks local.
/// - With the default interval (31) the worker mostly serves its local queue and the
///   overflowed sockets wait: p99 ~150 ms at 1000 connections x 20 B on one core, with the
///   median at ~2 ms.
/// - With an interval of 1 (the global queue first on every tick) the 128 tasks kept local
///   run only once the global queue is empty, which under a steady load can take seconds:
///   groups of exactly 128 sockets got no answer for 0.8-5 s while p99 looked fine.
/// - With 2 every socket is answered within a few rounds, but the two queues still serve
///   sockets unevenly: p99 18-25 ms, max 30-60 ms on one core.
/// - The current-thread scheduler on that one core: p99 14-15 ms, max 25-35 ms, at the same
///   or lower CPU cost per message, and more broadcast deliveries per second.
///
/// wsload's `--max-wait` turns any answer slower than a bound into an error; CI runs it at
/// 1000 connections on one core (`ci/load-smoke.sh`).
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     ws_server::runtime_builder().build()?.block_on(async {
///         // build and run the Server here
///         Ok(())
///     })
/// }
/// ```
pub fn runtime_builder() -> Builder {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        Builder::new_current_thread()
    } else {
        let mut builder = Builder::new_multi_thread();
        builder.global_queue_interval(2);
        builder
    };
    builder.enable_all();
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_follows_the_cpus_this_process_may_use() {
        let runtime = runtime_builder().build().unwrap();
        let one_cpu = std::thread::available_parallelism().unwrap().get() == 1;
        let expected = if one_cpu {
            tokio::runtime::RuntimeFlavor::CurrentThread
        } else {
            tokio::runtime::RuntimeFlavor::MultiThread
        };
        assert_eq!(runtime.handle().runtime_flavor(), expected);
        // Timers and I/O are enabled: a socket binds and a sleep completes.
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            assert!(listener.local_addr().unwrap().port() > 0);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        });
    }
}
