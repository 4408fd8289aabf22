//! What a run measured, as text for a person or one JSON line for a script.

use std::fmt;

use serde_json::{Value, json};

use crate::options::{Mode, Options, Payload};
use crate::tally::Tally;

/// The figures of one run. Rates are over the measured window only.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `echo`, `broadcast`, `idle` or `connect`.
    pub mode: &'static str,
    /// The target URL's path.
    pub path: String,
    /// Over TLS (`wss://`).
    pub tls: bool,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that completed the handshake.
    pub connected: usize,
    /// Seconds it took to open them.
    pub connect_s: f64,
    /// Payload bytes per message (chat lines: their target size).
    pub size: usize,
    /// `pattern` or `chat`.
    pub payload: &'static str,
    /// permessage-deflate was offered (`--deflate`).
    pub deflate_offered: bool,
    /// Connections that agreed to permessage-deflate.
    pub deflate_connections: usize,
    /// The first agreement, as the server's `Sec-WebSocket-Extensions` answer would say it in
    /// full (`None`: none agreed).
    pub deflate: Option<String>,
    /// Echo: messages in flight per connection.
    pub inflight: usize,
    /// Broadcast: senders per round.
    pub senders: usize,
    /// Length of the measured window, seconds.
    pub window_s: f64,
    /// Messages verified in the window: echoes, or broadcast deliveries; connect mode:
    /// connections opened and closed.
    pub messages: u64,
    /// Broadcast: rounds completed in the window.
    pub rounds: u64,
    /// Messages sent in the window (echo: one per echo; broadcast: one per sender and round).
    pub sent: u64,
    /// WebSocket bytes (frames and their headers, inside TLS) read off the sockets in the
    /// window.
    pub wire_read: u64,
    /// WebSocket bytes written to the sockets in the window.
    pub wire_written: u64,
    /// Latencies measured in the window (none: a broadcast whose rounds all outlasted it).
    pub latencies: u64,
    /// Latency quantiles in µs: per echo, per broadcast round, or to the `101` of a new
    /// connection.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Wrong bytes, lengths, opcodes or tags, unexpected closes, failed connects.
    pub errors: u64,
    /// Closing handshakes the server did not complete.
    pub close_errors: u64,
    /// The first few errors, described.
    pub notes: Vec<String>,
    /// Server CPU time (user + system) in the window, seconds.
    pub server_cpu_s: Option<f64>,
    /// The load generator's own CPU time in the window, seconds.
    pub wsload_cpu_s: Option<f64>,
    /// Idle: the server's VmRSS before opening the connections, bytes.
    pub rss_before: Option<u64>,
    /// Idle: its VmRSS with them open.
    pub rss_after: Option<u64>,
}

impl Report {
    pub(crate) fn new(options: &Options) -> Self {
        Report {
            mode: match options.mode {
                Mode::Echo => "echo",
                Mode::Broadcast => "broadcast",
                Mode::Idle => "idle",
                Mode::Connect => "connect",
            },
            tls: options.tls,
            path: options.target.path.clone(),
            connections: options.connections,
            size: options.size,
            payload: match options.payload {
                Payload::Pattern => "pattern",
                Payload::Chat => "chat",
            },
            deflate_offered: options.deflate,
            inflight: options.inflight,
            senders: options.senders(),
            ..Report::default()
        }
    }

    pub(crate) fn fill(&mut self, tally: &Tally) {
        self.messages = tally.messages.get();
        self.rounds = tally.rounds.get();
        self.sent = tally.sent.get();
        self.deflate_connections = tally.deflate_agreed.get();
        self.deflate = tally.deflate_params.borrow().clone();
        let latency = tally.latency.borrow();
        self.latencies = latency.len();
        let us = |ns: u64| ns as f64 / 1000.0;
        self.p50_us = us(latency.value_at_quantile(0.5));
        self.p99_us = us(latency.value_at_quantile(0.99));
        self.max_us = us(latency.max());
        self.errors = tally.errors.get();
        self.close_errors = tally.close_errors.get();
        self.notes = tally.notes.borrow().clone();
    }

    /// Messages per second over the window.
    pub fn msgs_per_s(&self) -> f64 {
        if self.window_s > 0.0 { self.messages as f64 / self.window_s } else { 0.0 }
    }

    /// Server CPU µs per message.
    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        self.server_cpu_s.filter(|_| self.messages > 0).map(|s| s * 1e6 / self.messages as f64)
    }

    /// The load generator's CPU use as a share of the window (1.0: one core saturated).
    pub fn wsload_cpu_share(&self) -> Option<f64> {
        self.wsload_cpu_s.filter(|_| self.window_s > 0.0).map(|s| s / self.window_s)
    }

    /// Bytes read off the sockets per message delivered (echo or broadcast delivery), frame
    /// headers and control frames included.
    pub fn wire_in_per_msg(&self) -> Option<f64> {
        (self.messages > 0 && self.mode != "connect").then(|| self.wire_read as f64 / self.messages as f64)
    }

    /// Bytes written to the sockets per message sent (the same as per echo in echo mode;
    /// broadcast: per message a sender sent, not per delivery).
    pub fn wire_out_per_msg(&self) -> Option<f64> {
        (self.sent > 0 && self.mode != "connect").then(|| self.wire_written as f64 / self.sent as f64)
    }

    /// Idle: the server's memory growth per open connection, bytes.
    pub fn bytes_per_conn(&self) -> Option<f64> {
        match (self.rss_before, self.rss_after) {
            (Some(b), Some(a)) if self.connected > 0 => Some((a as f64 - b as f64) / self.connected as f64),
            _ => None,
        }
    }

    /// What one latency measures.
    fn latency_of(&self) -> &'static str {
        match self.mode {
            "broadcast" => "round",
            "connect" => "connection",
            _ => "message",
        }
    }

    /// All figures as one JSON object.
    pub fn to_json(&self) -> Value {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        json!({
            "mode": self.mode,
            "path": self.path,
            "tls": self.tls,
            "connections": self.connections,
            "connected": self.connected,
            "connect_s": round(self.connect_s),
            "size": self.size,
            "payload": self.payload,
            "deflate_offered": self.deflate_offered,
            "deflate_connections": self.deflate_connections,
            "deflate": self.deflate,
            "inflight": self.inflight,
            "senders": self.senders,
            "window_s": round(self.window_s),
            "messages": self.messages,
            "msgs_per_s": round(self.msgs_per_s()),
            "rounds": self.rounds,
            "sent": self.sent,
            "wire_read": self.wire_read,
            "wire_written": self.wire_written,
            "wire_in_per_msg": self.wire_in_per_msg().map(round),
            "wire_out_per_msg": self.wire_out_per_msg().map(round),
            "latency_of": self.latency_of(),
            "latencies": self.latencies,
            // Null, not 0, when nothing was timed.
            "p50_us": (self.latencies > 0).then(|| round(self.p50_us)),
            "p99_us": (self.latencies > 0).then(|| round(self.p99_us)),
            "max_us": (self.latencies > 0).then(|| round(self.max_us)),
            "errors": self.errors,
            "close_errors": self.close_errors,
            "notes": self.notes,
            "server_cpu_s": self.server_cpu_s.map(round),
            "server_cpu_us_per_msg": self.server_cpu_us_per_msg().map(|x| (x * 1000.0).round() / 1000.0),
            "wsload_cpu_s": self.wsload_cpu_s.map(round),
            "wsload_cpu_share": self.wsload_cpu_share().map(round),
            "rss_before": self.rss_before,
            "rss_after": self.rss_after,
            "bytes_per_conn": self.bytes_per_conn().map(f64::round),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "wss" } else { "ws" };
        if self.mode == "connect" {
            writeln!(f, "connect {scheme} {}: {} connectors", self.path, self.connections)?;
        } else {
            writeln!(
                f,
                "{} {scheme} {}: {}/{} connections open in {:.2} s",
                self.mode, self.path, self.connected, self.connections, self.connect_s
            )?;
        }
        if self.deflate_offered {
            match &self.deflate {
                Some(agreed) => {
                    writeln!(f, "permessage-deflate on {} connections: {agreed}", self.deflate_connections)?
                }
                None => writeln!(f, "permessage-deflate offered, agreed on no connection")?,
            }
        }
        if self.mode == "idle" {
            if let Some(b) = self.bytes_per_conn() {
                let mib = |x: Option<u64>| x.unwrap_or(0) as f64 / (1 << 20) as f64;
                writeln!(
                    f,
                    "server VmRSS {:.1} MiB -> {:.1} MiB: {b:.0} bytes per connection",
                    mib(self.rss_before),
                    mib(self.rss_after)
                )?;
            }
        } else {
            let (unit, per_s, of) = match self.mode {
                "connect" => ("connection", "connections/s", "connection (to the 101)"),
                "broadcast" => ("message", "msgs/s", "round"),
                _ => ("message", "msgs/s", "echo"),
            };
            let about = if self.payload == "chat" { "chat lines of ~" } else { "" };
            match self.mode {
                "connect" => write!(f, "{} connections opened and closed", self.messages)?,
                "broadcast" => write!(f, "{} deliveries of {about}{} B", self.messages, self.size)?,
                _ => write!(f, "{} echoes of {about}{} B", self.messages, self.size)?,
            }
            writeln!(f, " in {:.2} s: {:.0} {per_s}", self.window_s, self.msgs_per_s())?;
            if self.mode == "broadcast" {
                writeln!(f, "{} rounds of {} senders", self.rounds, self.senders)?;
            }
            if self.latencies > 0 {
                writeln!(
                    f,
                    "latency per {of}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                    self.p50_us, self.p99_us, self.max_us
                )?;
            } else {
                writeln!(f, "latency per {of}: none measured in the window")?;
            }
            if let (Some(cpu), Some(per)) = (self.server_cpu_s, self.server_cpu_us_per_msg()) {
                writeln!(f, "server CPU {cpu:.2} s: {per:.3} µs per {unit}")?;
            }
            if let (Some(read), Some(written)) = (self.wire_in_per_msg(), self.wire_out_per_msg()) {
                writeln!(
                    f,
                    "wire: {read:.1} B read per {unit} delivered, {written:.1} B written per {unit} sent \
                     (WebSocket frames with headers)"
                )?;
            }
            if let Some(share) = self.wsload_cpu_share() {
                writeln!(f, "wsload CPU {:.0} % of one core", share * 100.0)?;
            }
        }
        writeln!(f, "errors: {}, close errors: {}", self.errors, self.close_errors)?;
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        Ok(())
    }
}
