//! Connect load: each connector opens a connection (TCP, TLS if asked, the upgrade), closes it
//! with the closing handshake, and starts again, until the run stops. A connection counts once
//! its close completes; its latency is the time to the server's `101`.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::handshake::Target;
use crate::socket::{Connector, Socket};
use crate::tally::{Phase, Tally};

/// A connector whose attempt failed waits this long before the next, so that a server that
/// refuses connections is not hammered by a tight loop of errors.
const AFTER_ERROR: Duration = Duration::from_millis(10);

/// One connector's loop, from the start of the load to its end.
pub(crate) async fn drive(
    target: &Target,
    connector: &Connector,
    open_limit: Duration,
    close_limit: Duration,
    tally: &Tally,
    mut phase: watch::Receiver<Phase>,
) {
    let _ = phase.wait_for(|p| *p != Phase::Connecting).await;
    while *phase.borrow() == Phase::Running {
        let started = Instant::now();
        let socket = match tokio::time::timeout(open_limit, Socket::connect(target, connector)).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => {
                tally.error(format_args!("connect: {e}"));
                tokio::time::sleep(AFTER_ERROR).await;
                continue;
            }
            Err(_) => {
                tally.error(format_args!("connect: no upgrade within {open_limit:?}"));
                continue;
            }
        };
        let opened = started.elapsed();
        match socket.close(close_limit).await {
            Ok(()) if tally.measuring.get() => {
                tally.record_latency(opened);
                tally.delivered();
            }
            Ok(()) => {}
            Err(e) => tally.close_error(e),
        }
    }
}
