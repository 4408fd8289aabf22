//! `wsload`'s command line.

use std::ffi::OsString;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::chat::CHAT_SIZE;
use crate::handshake::Target;

/// The most connections one run may open.
pub const MAX_CONNECTIONS: usize = 20_000;
/// The largest message one run may send.
pub const MAX_SIZE: usize = 16 << 20;
/// The tag at the head of every broadcast payload: sender (4 hex digits), round (8).
pub const BROADCAST_TAG: usize = 12;

/// What the load looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every connection keeps `--inflight` messages out and checks every byte of their echoes.
    Echo,
    /// Rounds: `--senders` connections send one message each, every connection receives all.
    Broadcast,
    /// Connections that only open, to measure the server's memory per connection (needs
    /// `--server-pid`).
    Idle,
    /// New connections per second: `--connections` connectors, each in a loop of connect
    /// (TCP, TLS if asked, the upgrade) and close (the closing handshake); no messages.
    Connect,
}

/// What the messages hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Payload {
    /// ASCII whose pattern moves with the position, `--size` bytes, every byte checked.
    Pattern,
    /// Chat lines as the demo's chat class broadcasts them: compact JSON of about `--size`
    /// bytes (300 unless given), common English words, each line different, with wsload's
    /// tag in a `Seq` member; every byte checked against the line the receiver makes itself.
    Chat,
}

/// A WebSocket load generator for loopback servers: one thread, one task per connection,
/// frames built once, every echoed byte checked.
#[derive(Debug, Clone, Parser)]
#[command(name = "wsload")]
pub struct Options {
    /// The server: `ws://HOST:PORT/PATH` or `wss://…`, where HOST is `127.0.0.1`, `localhost`
    /// or `[::1]`.
    #[arg(long = "url", value_name = "URL", value_parser = Target::parse)]
    pub target: Target,
    /// TLS, as with a `wss://` URL: rustls on ring, TLS 1.3 with TLS13_AES_128_GCM_SHA256 and
    /// X25519 only, ALPN `http/1.1`, no resumption (needs `--ca`).
    #[arg(long)]
    pub tls: bool,
    /// TLS: the PEM file of the root CA to trust (`gen-cert` writes one).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Which load.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    /// How many connections (connect mode: how many connect at once).
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONNECTIONS as u64))]
    pub connections: usize,
    /// Payload bytes per message (`--payload chat`: the lines' target size, 300 unless given).
    #[arg(long, default_value_t = 20, value_parser = RangedU64ValueParser::<usize>::new().range(..=MAX_SIZE as u64))]
    pub size: usize,
    /// What the messages hold.
    #[arg(long, value_enum, default_value_t = Payload::Pattern)]
    pub payload: Payload,
    /// Offer permessage-deflate (RFC 7692) as Chromium does (`permessage-deflate;
    /// client_max_window_bits`), take whatever the server agrees to, then compress every
    /// message sent (RSV1; the context kept or reset per message as agreed) and inflate what
    /// arrives, checking it as usual. A connection the server does not agree with fails (see
    /// `--deflate-optional`).
    #[arg(long)]
    pub deflate: bool,
    /// With `--deflate`: a server that refuses the extension is loaded plain (the same
    /// messages through the same code, uncompressed) instead of failing: a baseline.
    #[arg(long, requires = "deflate")]
    pub deflate_optional: bool,
    /// Idle: every connection first sends one message and waits for its echo (an echo
    /// server's path), so the server holds what a used socket keeps (with permessage-deflate
    /// and context takeover, its compression contexts).
    #[arg(long)]
    pub idle_echo: bool,
    /// Echo: messages in flight per connection.
    #[arg(long, default_value_t = 1, value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub inflight: usize,
    /// Broadcast: how many connections send each round (default: all of them).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub senders: Option<usize>,
    /// The measured window, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds(0.1..=3600.0))]
    pub duration: Duration,
    /// Traffic before the measured window, not counted, in seconds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds(0.0..=60.0))]
    pub warmup: Duration,
    /// The server's process, for its CPU time and memory.
    #[arg(long, value_name = "PID", required_if_eq("mode", "idle"))]
    pub server_pid: Option<u32>,
    /// Echo: an echo slower than this many seconds (or still missing at the end) is an error.
    /// A bound on starvation (a socket the server leaves unserved), not a speed target.
    #[arg(long, value_name = "SECS", value_parser = seconds(0.001..=3600.0))]
    pub max_wait: Option<Duration>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    /// Parses a command line (the program's name first), with the checks that span options.
    ///
    /// ```
    /// let options = benches::Options::from_args(["wsload", "--url", "ws://127.0.0.1:9001/"]).unwrap();
    /// assert_eq!((options.connections, options.senders()), (100, 100));
    /// ```
    pub fn from_args<I, T>(args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Options::command().try_get_matches_from(args)?;
        let mut options = Options::from_arg_matches(&matches)?;
        if options.payload == Payload::Chat && matches.value_source("size") == Some(ValueSource::DefaultValue)
        {
            options.size = CHAT_SIZE;
        }
        options.target.tls |= options.tls;
        options.tls = options.target.tls;
        if options.tls && options.ca.is_none() {
            return Err(invalid("--ca: required with --tls or a wss:// URL"));
        }
        if options.senders() > options.connections {
            return Err(invalid("--senders: at most --connections"));
        }
        if options.idle_echo && options.mode != Mode::Idle {
            return Err(invalid("--idle-echo: only with --mode idle"));
        }
        if options.mode == Mode::Broadcast
            && options.payload == Payload::Pattern
            && options.size < BROADCAST_TAG
        {
            return Err(invalid(&format!(
                "--size: at least {BROADCAST_TAG} in broadcast mode (sender and round tag)"
            )));
        }
        Ok(options)
    }

    /// Broadcast: how many connections send each round.
    pub fn senders(&self) -> usize {
        self.senders.unwrap_or(self.connections)
    }
}

fn invalid(message: &str) -> clap::Error {
    Options::command().error(ErrorKind::ValueValidation, message)
}

/// A value parser for a number of seconds within `range`.
fn seconds(range: RangeInclusive<f64>) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |value| match value.parse::<f64>() {
        Ok(s) if range.contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{} to {} seconds", range.start(), range.end())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, clap::Error> {
        Options::from_args(["wsload"].into_iter().chain(s.split_whitespace()))
    }

    #[test]
    fn defaults_and_limits() {
        let o = parse("--url ws://127.0.0.1:1/x").unwrap();
        assert_eq!((o.mode, o.connections, o.size, o.inflight, o.senders()), (Mode::Echo, 100, 20, 1, 100));
        assert_eq!(
            (o.duration, o.warmup, o.max_wait),
            (Duration::from_secs(10), Duration::from_secs(1), None)
        );
        assert!(parse("--url ws://127.0.0.1:1/ --connections 20001").is_err());
        assert!(parse("--url ws://192.168.1.1:1/").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --mode idle").is_err()); // no --server-pid
        assert!(parse("--url ws://127.0.0.1:1/ --mode idle --server-pid 1").is_ok());
        assert!(parse("--url ws://127.0.0.1:1/ --mode broadcast --size 4").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --connections 5 --senders 6").is_err());
        assert!(parse("--connections 5").is_err());
        let o = parse("--url ws://127.0.0.1:1/x --max-wait 0.5").unwrap();
        assert_eq!(o.max_wait, Some(Duration::from_millis(500)));
        assert!(parse("--url ws://127.0.0.1:1/ --max-wait 0").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --duration 0.05").is_err());
        assert!(parse("--url wss://127.0.0.1:1/").is_err()); // no --ca
        let o = parse("--url ws://127.0.0.1:1/ --tls --ca ca.pem --mode connect").unwrap();
        assert!(o.tls && o.target.tls && o.mode == Mode::Connect);
        assert!(parse("--url wss://127.0.0.1:1/ --ca ca.pem").unwrap().tls);
    }

    #[test]
    fn chat_and_deflate() {
        let o = parse("--url ws://127.0.0.1:1/ --payload chat").unwrap();
        assert_eq!((o.payload, o.size, o.deflate), (Payload::Chat, CHAT_SIZE, false));
        assert_eq!(parse("--url ws://127.0.0.1:1/ --payload chat --size 20").unwrap().size, 20);
        assert_eq!(parse("--url ws://127.0.0.1:1/ --size 30").unwrap().payload, Payload::Pattern);
        assert!(parse("--url ws://127.0.0.1:1/ --mode broadcast --payload chat --size 4").is_ok());
        let o = parse("--url ws://127.0.0.1:1/ --deflate --deflate-optional").unwrap();
        assert!(o.deflate && o.deflate_optional);
        assert!(parse("--url ws://127.0.0.1:1/ --deflate-optional").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --idle-echo").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --mode idle --server-pid 1 --idle-echo").unwrap().idle_echo);
    }

    #[test]
    fn the_command_line_is_consistent() {
        Options::command().debug_assert();
    }
}
