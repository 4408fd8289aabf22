//! `wsload`'s command line.

use std::time::Duration;

use crate::handshake::Target;

/// The most connections one run may open.
pub const MAX_CONNECTIONS: usize = 20_000;
/// The largest message one run may send.
pub const MAX_SIZE: usize = 16 << 20;
/// The tag at the head of every broadcast payload: sender (4 hex digits), round (8).
pub const BROADCAST_TAG: usize = 12;

/// What the load looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every connection keeps `inflight` messages out and checks their echoes.
    Echo,
    /// Rounds: `senders` connections send one message each, every connection receives all.
    Broadcast,
    /// Connections that only open, to measure the server's memory per connection.
    Idle,
}

/// Everything `wsload` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which load.
    pub mode: Mode,
    /// The server.
    pub target: Target,
    /// How many connections.
    pub connections: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Echo: messages in flight per connection.
    pub inflight: usize,
    /// Broadcast: how many connections send each round.
    pub senders: usize,
    /// The measured window.
    pub duration: Duration,
    /// Traffic before the measured window, not counted.
    pub warmup: Duration,
    /// The server's process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Echo: an echo slower than this (or still missing at the end) is an error. A bound on
    /// starvation (a socket the server leaves unserved), not a speed target.
    pub max_wait: Option<Duration>,
    /// `(server CPU, load CPU)`: probe how far apart the two CPUs are during the window and
    /// also report the figures per placement (see the `placement` module).
    pub placement: Option<(usize, usize)>,
    /// Print one JSON line instead of text.
    pub json: bool,
}

/// The usage text.
pub const USAGE: &str = "\
usage: wsload --url ws://127.0.0.1:PORT/PATH [--mode echo|broadcast|idle] [--connections N]
              [--size BYTES] [--inflight K] [--senders S] [--duration SECS] [--warmup SECS]
              [--server-pid PID] [--max-wait SECS] [--placement SERVER_CPU,LOAD_CPU] [--json]
  echo:      each connection keeps K messages of BYTES in flight, checks every echoed byte;
             with --max-wait, an echo slower than SECS (or missing at the end) is an error
  broadcast: rounds in which S connections send one message each and all N receive all S
  idle:      opens N connections and reports the server's VmRSS growth per connection
             (needs --server-pid)
  --placement: every 100 ms, time a cache line's round trip between the two CPUs (a VM's
             host moves its vCPUs) and sum the figures per placement, close or distant
             (needs --server-pid; moves wsload's thread to LOAD_CPU)
The target must be loopback (127.0.0.1, localhost, [::1]).";

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut url = None;
        let mut mode = Mode::Echo;
        let mut connections = 100;
        let mut size = 20;
        let mut inflight = 1;
        let mut senders = None;
        let mut duration = 10.0;
        let mut warmup = 1.0;
        let mut server_pid = None;
        let mut placement = None;
        let mut max_wait: Option<f64> = None;
        let mut json = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--json" {
                json = true;
                continue;
            }
            if arg == "--help" || arg == "-h" {
                return Err(USAGE.into());
            }
            let value = args.next().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
            match arg.as_str() {
                "--url" => url = Some(value),
                "--mode" => {
                    mode = match value.as_str() {
                        "echo" => Mode::Echo,
                        "broadcast" => Mode::Broadcast,
                        "idle" => Mode::Idle,
                        _ => return Err(format!("--mode: echo, broadcast or idle, not {value:?}")),
                    }
                }
                "--connections" => connections = number(&arg, &value)?,
                "--size" => size = number(&arg, &value)?,
                "--inflight" => inflight = number(&arg, &value)?,
                "--senders" => senders = Some(number(&arg, &value)?),
                "--duration" => duration = number(&arg, &value)?,
                "--warmup" => warmup = number(&arg, &value)?,
                "--server-pid" => server_pid = Some(number(&arg, &value)?),
                "--max-wait" => max_wait = Some(number(&arg, &value)?),
                "--placement" => {
                    let cpus =
                        value.split_once(',').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                    placement =
                        Some(cpus.ok_or_else(|| format!("--placement: SERVER_CPU,LOAD_CPU, not {value:?}"))?);
                }
                _ => return Err(format!("unknown option {arg}\n{USAGE}")),
            }
        }
        let target = Target::parse(&url.ok_or_else(|| format!("--url is required\n{USAGE}"))?)?;
        if !(1..=MAX_CONNECTIONS).contains(&connections) {
            return Err(format!("--connections: 1 to {MAX_CONNECTIONS}"));
        }
        if size > MAX_SIZE {
            return Err(format!("--size: at most {MAX_SIZE}"));
        }
        if !(1..=1024).contains(&inflight) {
            return Err("--inflight: 1 to 1024".into());
        }
        let senders = senders.unwrap_or(connections);
        if !(1..=connections).contains(&senders) {
            return Err("--senders: 1 to --connections".into());
        }
        if mode == Mode::Broadcast && size < BROADCAST_TAG {
            return Err(format!("--size: at least {BROADCAST_TAG} in broadcast mode (sender and round tag)"));
        }
        if placement.is_some() && server_pid.is_none() {
            return Err("--placement needs --server-pid".into());
        }
        if mode == Mode::Idle && server_pid.is_none() {
            return Err("--mode idle needs --server-pid".into());
        }
        if !(0.1..=3600.0).contains(&duration) || !(0.0..=60.0).contains(&warmup) {
            return Err("--duration: 0.1 to 3600 s; --warmup: 0 to 60 s".into());
        }
        if max_wait.is_some_and(|w| !(0.001..=3600.0).contains(&w)) {
            return Err("--max-wait: 0.001 to 3600 s".into());
        }
        Ok(Options {
            mode,
            target,
            connections,
            size,
            inflight,
            senders,
            duration: Duration::from_secs_f64(duration),
            warmup: Duration::from_secs_f64(warmup),
            server_pid,
            max_wait: max_wait.map(Duration::from_secs_f64),
            placement,
            json,
        })
    }
}

fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{arg}: bad value {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, String> {
        Options::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn defaults_and_limits() {
        let o = parse("--url ws://127.0.0.1:1/x").unwrap();
        assert_eq!((o.mode, o.connections, o.size, o.inflight, o.senders), (Mode::Echo, 100, 20, 1, 100));
        assert_eq!(o.duration, Duration::from_secs(10));
        assert!(parse("--url ws://127.0.0.1:1/ --connections 20001").is_err());
        assert!(parse("--url ws://192.168.1.1:1/").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --mode idle").is_err());
        assert!(parse("--url ws://127.0.0.1:1/ --placement 0,1").is_err()); // no --server-pid
        assert!(parse("--url ws://127.0.0.1:1/ --server-pid 1 --placement 0").is_err());
        assert_eq!(
            parse("--url ws://127.0.0.1:1/ --server-pid 1 --placement 0,1").unwrap().placement,
            Some((0, 1))
        );
        assert!(parse("--url ws://127.0.0.1:1/ --mode broadcast --size 4").is_err());
        assert!(parse("--connections 5").is_err());
        assert_eq!(o.max_wait, None);
        let o = parse("--url ws://127.0.0.1:1/x --max-wait 0.5").unwrap();
        assert_eq!(o.max_wait, Some(Duration::from_millis(500)));
        assert!(parse("--url ws://127.0.0.1:1/ --max-wait 0").is_err());
    }
}
