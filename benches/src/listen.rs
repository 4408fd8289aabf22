//! The command line of every server in this package (the peers and the floor): `--addr`, and
//! the `listening on ADDR` line that `compare.sh`, `instructions.sh` and CI wait for.

use std::io::{self, Write as _};
use std::net::TcpListener;

use clap::{CommandFactory, FromArgMatches, Parser};

#[derive(Debug, Parser)]
struct ServerArgs {
    /// Address to listen on (port 0: any free port); the server prints `listening on ADDR`.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
}

/// Parses this process's `--addr` (`default_addr` without it; `--help` shows `about`), binds
/// it, and prints `listening on ADDR`. The listener is non-blocking, ready for an event loop
/// or `tokio::net::TcpListener::from_std`.
pub fn listen(about: &'static str, default_addr: &str) -> io::Result<TcpListener> {
    let matches = ServerArgs::command().about(about).get_matches();
    let args = ServerArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let listener = TcpListener::bind(args.addr.as_deref().unwrap_or(default_addr))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    Ok(listener)
}
