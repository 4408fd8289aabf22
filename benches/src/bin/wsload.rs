//! A WebSocket load generator for loopback servers: `wsload --url ws://127.0.0.1:PORT/PATH
//! [--mode echo|broadcast|idle] [--connections N] [--size BYTES] [--inflight K] [--senders S]
//! [--duration SECS] [--server-pid PID] [--json]` (`--help` for more). One thread, one task
//! per connection, frames built once, every echoed byte checked. It exits by itself if the
//! run overruns its deadline.

use std::process::ExitCode;

use benches::Options;

fn main() -> ExitCode {
    let options = Options::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let deadline = benches::deadline(&options);
    // A watchdog outside the runtime: whatever the server does, the run ends.
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!("wsload: deadline of {deadline:?} passed, exiting");
        std::process::exit(3);
    });
    let json = options.json;
    let report = match benches::run(options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("wsload: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
}
