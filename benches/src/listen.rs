//! The command line of every server in this package (the peers and the floor): `--addr`, and
//! the `listening on ADDR` line that `compare.sh`, `instructions.sh` and CI wait for.

use std::io::{self, Write as _};
use std::net::TcpListener;

use clap::{Args, CommandFactory, FromArgMatches, Parser};

#[derive(Debug, Parser)]
struct ServerArgs<A: Args> {
    /// Address to listen on (port 0: any free port); the server prints `listening on ADDR`.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    #[command(flatten)]
    more: A,
}

/// No options besides `--addr`.
#[derive(Debug, Args)]
struct NoMore {}

/// Parses this process's `--addr` (`default_addr` without it; `--help` shows `about`), binds
/// it, and prints `listening on ADDR`. The listener is non-blocking, ready for an event loop
/// or `tokio::net::TcpListener::from_std`.
pub fn listen(about: &'static str, default_addr: &str) -> io::Result<TcpListener> {
    listen_with(about, default_addr, |_: NoMore| Ok(())).map(|(listener, ())| listener)
}

/// [`listen`] for a server with more options `A` (flattened next to `--addr`): `prepare`
/// turns them into what the server needs (a TLS configuration, say) before the socket is
/// bound, so a server that cannot start never says it is listening.
pub fn listen_with<A: Args, T>(
    about: &'static str,
    default_addr: &str,
    prepare: impl FnOnce(A) -> io::Result<T>,
) -> io::Result<(TcpListener, T)> {
    let matches = ServerArgs::<A>::command().about(about).get_matches();
    let args = ServerArgs::<A>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let prepared = prepare(args.more)?;
    let listener = TcpListener::bind(args.addr.as_deref().unwrap_or(default_addr))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    Ok((listener, prepared))
}
