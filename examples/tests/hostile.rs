//! Hostile clients against the `demo` binary (DESIGN.md, "Limits and policies"): a ping flood
//! that never reads, slow chat consumers, slow-loris request heads (and the cap on pending
//! handshakes, and on the admin listener), SIGTERM/SIGINT with many clients, cross-site Origins, a handshake that
//! finishes during shutdown, and permessage-deflate zip bombs.
//!
//! Not part of `cargo test --workspace` (`test = false`); run it alone, in release:
//! `cargo test --release -p examples --test hostile -- --test-threads=1 --nocapture`.
//!
//! Each test spawns its own demo on 127.0.0.1:0, reads its memory from /proc/PID/status
//! (KiB), prints its figures on lines starting with `hostile:` before asserting, and kills
//! the demo when it ends. Every loop is bounded in count and time; the time bounds are
//! generous deadlines that fail a test which hangs, never assertions on speed.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::timeout;
use ws_proto::{
    Connection, Event, FrameHeader, HeaderParse, MessageKind, PERMESSAGE_DEFLATE, RequestParams, Role,
};
use ws_session::{ConnectOptions, Error, Transport, WebSocket, connect};

/// The usual bound on one step (a connect, a read that should come at once).
const T: Duration = Duration::from_secs(10);
const ECHO: &str = "/csp/user/MyApp.MyWebSocketServer.cls";
/// One MiB, in the KiB of /proc/PID/status.
const MIB: u64 = 1024;

// ---------------------------------------------------------------------------------------
// The demo process and its memory
// ---------------------------------------------------------------------------------------

/// A demo process on 127.0.0.1:0, killed (SIGKILL) when dropped unless it already exited.
struct Demo {
    child: Child,
    addr: SocketAddr,
    /// Where it serves /metrics and /admin, with `--admin-addr`.
    admin: Option<SocketAddr>,
}

impl Demo {
    fn start(flags: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", std::env::var("HOSTILE_RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("HOSTILE_DEMO_LOG") {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("demo log file")),
                None => Stdio::null(),
            })
            .spawn()
            .expect("demo binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Drains stdout until the demo closes it (so the demo never blocks on it).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = ["demo listening on http://", "demo serving /metrics and /admin on http://"]
                    .iter()
                    .find_map(|prefix| line.strip_prefix(prefix));
                if let Some(rest) = addr {
                    let _ = tx.send(rest.trim_end_matches('/').to_string());
                }
            }
        });
        let mut next_addr = || -> SocketAddr {
            let addr: SocketAddr = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("demo did not print its address")
                .parse()
                .expect("demo printed a bad address");
            assert!(addr.ip().is_loopback(), "demo listens on {addr}, not on loopback");
            addr
        };
        let addr = next_addr();
        let admin = flags.contains(&"--admin-addr").then(&mut next_addr);
        Demo { child, addr, admin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Resident memory now (KiB; 0 once the process is gone).
    fn rss(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }

    /// Peak resident memory so far (KiB).
    fn hwm(&self) -> u64 {
        status_kib(self.pid(), "VmHWM:")
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill() only sends a signal to our own child, whose pid is not reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}): {}", io::Error::last_os_error());
    }

    /// Waits (bounded) for the process to exit.
    async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        for _ in 0..100_000 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the demo's VmRSS every 100 ms (at most 10 minutes) and keeps the largest.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(demo: &Demo) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = demo.pid();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            for _ in 0..6000 {
                peak = peak.max(status_kib(pid, "VmRSS:"));
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        Sampler { stop, thread }
    }

    /// Stops sampling: the peak of the samples and of the kernel's own high-water mark.
    fn finish(self, demo: &Demo) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler").max(demo.hwm())
    }
}

/// The server's memory in one test (KiB).
struct Rss {
    before: u64,
    peak: u64,
    after: u64,
}

impl Rss {
    fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

impl fmt::Display for Rss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rss_kib before={} peak={} after={} growth={}",
            self.before,
            self.peak,
            self.after,
            self.growth()
        )
    }
}

// ---------------------------------------------------------------------------------------
// Well-behaved clients
// ---------------------------------------------------------------------------------------

fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(n * 99).div_ceil(100) - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

async fn open_ws(demo: &Demo, path: &str) -> WebSocket<Transport> {
    match timeout(T, connect(&demo.url(path), &ConnectOptions::default())).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => panic!("connect {path}: {e}"),
        Err(_) => panic!("connect {path}: no answer in {T:?}"),
    }
}

/// One echo over `ws`.
async fn echo_once(ws: &mut WebSocket<Transport>, text: &str) -> Result<(), String> {
    ws.write(text).await.map_err(|e| e.to_string())?;
    let reply = ws.read(0, T).await.map_err(|e| e.to_string())?;
    match reply.as_text() {
        Some(t) if t == text => Ok(()),
        other => {
            Err(format!("sent {text:?}, got {:?}", other.map(|t| t.chars().take(60).collect::<String>())))
        }
    }
}

/// The warm-up before a baseline: one echo on a connection of its own.
async fn warm_up(demo: &Demo) {
    let mut ws = open_ws(demo, ECHO).await;
    echo_once(&mut ws, "warm-up").await.expect("warm-up echo");
    let _ = timeout(T, ws.end_server()).await;
}

/// What the well-behaved echo client saw.
#[derive(Default)]
struct EchoStats {
    sent: u64,
    ok: u64,
    error: Option<String>,
    latencies: Vec<Duration>,
}

impl EchoStats {
    fn all_ok(&self) -> bool {
        self.error.is_none() && self.ok == self.sent && self.ok > 0
    }
}

impl fmt::Display for EchoStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "good_echoes={}/{} good_p99_ms={}", self.ok, self.sent, ms(p99(&self.latencies)))?;
        match &self.error {
            Some(e) => write!(f, " good_error={e:?}"),
            None => Ok(()),
        }
    }
}

/// An echo client that sends a small message every 5 ms and checks each answer, from
/// `start` (which does the warm-up echo) to `finish` (at most 100,000 echoes or 5 minutes).
struct GoodEcho {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<EchoStats>,
}

impl GoodEcho {
    async fn start(demo: &Demo) -> GoodEcho {
        let mut ws = open_ws(demo, ECHO).await;
        echo_once(&mut ws, "warm-up").await.expect("warm-up echo");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut stats = EchoStats::default();
            for i in 0..100_000u64 {
                if flag.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(300) {
                    break;
                }
                stats.sent += 1;
                let t = Instant::now();
                match echo_once(&mut ws, &format!("good {i}")).await {
                    Ok(()) => {
                        stats.latencies.push(t.elapsed());
                        stats.ok += 1;
                    }
                    Err(e) => {
                        stats.error = Some(format!("echo {i}: {e}"));
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = timeout(T, ws.end_server()).await;
            stats
        });
        GoodEcho { stop, task }
    }

    async fn finish(self) -> EchoStats {
        self.stop.store(true, Ordering::Relaxed);
        match timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => EchoStats { error: Some(format!("task: {e}")), ..EchoStats::default() },
            Err(_) => EchoStats { error: Some("good client hung".into()), ..EchoStats::default() },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw clients
// ---------------------------------------------------------------------------------------

fn random_u64() -> u64 {
    RandomState::new().hash_one(Instant::now()) | 1
}

/// A client-role protocol state machine with random masking keys (for raw clients).
fn client_connection() -> Connection {
    let mut config = ws_proto::Config::default();
    config.mask_seed = random_u64();
    Connection::new(Role::Client, config)
}

/// A client opening handshake for `path` with `Host: host` and `extra` headers.
fn upgrade_request(host: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&random_u64().to_le_bytes());
    nonce[8..].copy_from_slice(&random_u64().to_le_bytes());
    let key = ws_proto::client_key(nonce);
    let mut out = Vec::with_capacity(256);
    let params = RequestParams { host, path, protocols: &[], extra_headers: extra };
    ws_proto::write_request(&mut out, &params, &key);
    out
}

/// A raw client's socket buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buffers {
    /// The kernel's defaults.
    Default,
    /// A 4 KiB receive buffer and a 536-byte MSS, as a hostile client may choose: the kernel
    /// then buffers little on either side (the server's send buffer is sized from the MSS),
    /// so a client that does not read shows in the server's own queues at once, not only
    /// after megabytes of loopback buffers.
    Small,
}

/// A TCP connection to the demo.
async fn raw_connect(addr: SocketAddr, buffers: Buffers) -> io::Result<TcpStream> {
    assert!(addr.ip().is_loopback());
    let socket = TcpSocket::new_v4()?;
    if buffers == Buffers::Small {
        socket.set_recv_buffer_size(4096)?;
        set_mss(&socket, 536)?;
    }
    match timeout(T, socket.connect(addr)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Sets `TCP_MAXSEG` before connecting (the MSS this end announces).
fn set_mss(socket: &TcpSocket, mss: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).expect("socklen");
    // SAFETY: the fd is open (borrowed from `socket`); the option value is a c_int of `len` bytes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&raw const mss).cast(),
            len,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `TCP_ESTABLISHED` in `tcp_info.tcpi_state` (FIN received: `CLOSE_WAIT`; RST: `CLOSE`).
const TCP_ESTABLISHED: u8 = 1;

/// The kernel's TCP state of `stream` (it sees the peer's FIN or RST without a read).
fn tcp_state(stream: &TcpStream) -> Option<u8> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data (all zeroes is a valid value).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: the fd is open (borrowed from `stream`); `info` and `len` describe a writable
    // buffer of `len` bytes, as getsockopt(TCP_INFO) requires.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_state)
}

/// An HTTP response head as far as it came.
struct Head {
    status: Option<u16>,
    /// The head's text (status line and header fields) as far as it came.
    text: String,
    /// Bytes after the head (the first WebSocket frames after a 101).
    leftover: BytesMut,
    /// How reading ended: "complete", "eof", "reset (..)", "timed out", "too long".
    end: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}"),
            None => write!(f, "no answer ({})", self.end),
        }
    }
}

/// Reads a response head: until the blank line, EOF, an error, 16 KiB, or `within`.
async fn read_head(stream: &mut TcpStream, within: Duration) -> Head {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = BytesMut::with_capacity(1024);
    let mut end = String::from("too long");
    for _ in 0..1024 {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let leftover = buf.split_off(i + 4);
            let text = String::from_utf8_lossy(&buf).into_owned();
            return Head { status: status_of(&buf), text, leftover, end: "complete".into() };
        }
        if buf.len() > 16 << 10 {
            break;
        }
        buf.reserve(4096);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => end = "timed out".into(),
            Ok(Ok(0)) => end = "eof".into(),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => end = format!("reset ({})", e.kind()),
        }
        break;
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    Head { status: status_of(&buf), text, leftover: BytesMut::new(), end }
}

impl Head {
    /// The value of the header field `name` (case-insensitive), if the head has it.
    fn field(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

fn status_of(head: &[u8]) -> Option<u16> {
    let code = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Connects and sends an opening handshake (Host = the demo's address); returns the
/// stream and the answer's head (waited for at most `within`).
async fn raw_upgrade(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
    buffers: Buffers,
    within: Duration,
) -> io::Result<(TcpStream, Head)> {
    let mut stream = raw_connect(addr, buffers).await?;
    stream.write_all(&upgrade_request(&addr.to_string(), path, extra)).await?;
    let head = read_head(&mut stream, within).await;
    Ok((stream, head))
}

/// How the server ended a raw connection, as its client saw it.
enum Ending {
    Close { code: Option<u16>, reason: String },
    Eof,
    Reset(String),
    TimedOut,
    BadFrame(String),
}

impl Ending {
    /// Did the server end the connection (a Close frame, EOF or a reset)?
    fn closed(&self) -> bool {
        matches!(self, Ending::Close { .. } | Ending::Eof | Ending::Reset(_))
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Close { code: Some(code), reason } => write!(f, "close_{code}({reason:?})"),
            Ending::Close { code: None, .. } => f.write_str("close_no_status"),
            Ending::Eof => f.write_str("eof"),
            Ending::Reset(e) => write!(f, "reset({e})"),
            Ending::TimedOut => f.write_str("still_open"),
            Ending::BadFrame(e) => write!(f, "bad_frame({e})"),
        }
    }
}

/// What a raw client read before the end.
struct Drained {
    ending: Ending,
    /// Frames before the end (data, pings, pongs).
    frames: u64,
    bytes: u64,
}

/// Reads server frames (after a 101; `input` holds what came with the head) until a Close
/// frame, EOF, an error, or `within`. A Close is answered, as a normal client would.
async fn read_to_close(stream: &mut TcpStream, mut input: BytesMut, within: Duration) -> Drained {
    let deadline = tokio::time::Instant::now() + within;
    let mut conn = client_connection();
    let mut drained = Drained { ending: Ending::TimedOut, frames: 0, bytes: input.len() as u64 };
    for _ in 0..1_000_000 {
        loop {
            match conn.poll_event(&mut input) {
                Ok(Some(Event::Close(frame))) => {
                    let reply = conn.take_output();
                    let _ = timeout(Duration::from_secs(1), stream.write_all(&reply)).await;
                    drained.ending = Ending::Close {
                        code: frame.as_ref().map(|f| f.code.0),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    };
                    return drained;
                }
                Ok(Some(_)) => drained.frames += 1,
                Ok(None) => break,
                Err(e) => {
                    drained.ending = Ending::BadFrame(e.to_string());
                    return drained;
                }
            }
        }
        conn.take_output(); // our automatic Pongs: this client does not send them
        input.reserve(64 << 10);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut input)).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                drained.ending = Ending::Eof;
                break;
            }
            Ok(Ok(n)) => drained.bytes += n as u64,
            Ok(Err(e)) => {
                drained.ending = Ending::Reset(e.kind().to_string());
                break;
            }
        }
    }
    drained
}

/// At most this many connects at once: below a listen backlog of 128 (std's), so that a
/// burst of SYNs is not dropped and retried seconds later.
const CONNECT_BURST: usize = 64;

/// Opens `n` connections (`CONNECT_BURST` at a time) that each send `partial` and then nothing.
async fn open_stalled(addr: SocketAddr, n: usize, partial: &'static [u8]) -> (Vec<TcpStream>, Vec<String>) {
    let mut open = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for chunk in 0..n.div_ceil(CONNECT_BURST) {
        let mut set = JoinSet::new();
        for _ in (chunk * CONNECT_BURST)..n.min((chunk + 1) * CONNECT_BURST) {
            set.spawn(async move {
                let mut stream = raw_connect(addr, Buffers::Default).await?;
                stream.write_all(partial).await?;
                Ok::<_, io::Error>(stream)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(stream)) => open.push(stream),
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    (open, errors)
}

/// Counts of answers, by kind ("HTTP 408", "no answer (eof)", ...).
fn tally<I: IntoIterator<Item = String>>(items: I) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------
// 1. Ping flood
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood() {
    const WRITE_TIMEOUT: u64 = 3;
    const PINGS: u64 = 500_000;
    const BATCH: u64 = 250;
    let demo = Demo::start(&["--write-timeout", &WRITE_TIMEOUT.to_string()]);
    let good = GoodEcho::start(&demo).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    let (mut attacker, head) = raw_upgrade(demo.addr, ECHO, &[], Buffers::Small, T).await.expect("attacker");
    assert_eq!(head.status, Some(101), "attacker's handshake: {head}");
    let mut frames = client_connection();
    let payload = [b'p'; 125];
    let started = Instant::now();
    let mut sent = 0u64;
    let stopped = loop {
        if sent >= PINGS {
            break "all sent".to_string();
        }
        if started.elapsed() > Duration::from_secs(20) {
            break "20 s passed".to_string();
        }
        for _ in 0..BATCH.min(PINGS - sent) {
            frames.ping(&payload).expect("ping");
        }
        let batch = frames.take_output();
        match timeout(Duration::from_secs(5), attacker.write_all(&batch)).await {
            Ok(Ok(())) => sent += BATCH.min(PINGS - sent),
            Ok(Err(e)) => break format!("write failed ({})", e.kind()),
            Err(_) => break "a write blocked 5 s".to_string(),
        }
    };
    let send_secs = started.elapsed().as_secs_f64();
    // Still without reading (a read would let the server make progress), wait until the
    // server has closed the connection (FIN or RST seen by TCP) or the window has passed.
    let window = Duration::from_secs(WRITE_TIMEOUT + 10);
    let flood_end = Instant::now();
    let mut fin_or_rst_after = None;
    for _ in 0..10_000 {
        if tcp_state(&attacker) != Some(TCP_ESTABLISHED) {
            fin_or_rst_after = Some(format!("{:.1}s", flood_end.elapsed().as_secs_f64()));
            break;
        }
        if flood_end.elapsed() >= window {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited_secs = flood_end.elapsed().as_secs_f64();
    // Then it reads: Pongs, then a Close, EOF or a reset (a FIN queued behind Pongs the
    // attacker never read shows only now).
    let drained = read_to_close(&mut attacker, head.leftover, Duration::from_secs(5)).await;
    let peak = sampler.finish(&demo);
    let stats = good.finish().await;
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: ping_flood pings_sent={sent} stopped={stopped:?} after_s={send_secs:.1} \
         fin_or_rst_seen_unread={fin_or_rst_after:?} waited_s={waited_secs:.1} attacker_end={} attacker_read_frames={} \
         attacker_read_bytes={}",
        drained.ending, drained.frames, drained.bytes
    );
    println!("hostile: ping_flood {rss} {stats}");
    assert!(rss.growth() <= 8 * MIB, "server RSS grew {} KiB (> 8 MiB) under the ping flood", rss.growth());
    assert!(
        drained.ending.closed(),
        "the server did not close the non-reading attacker within {} s (then 5 s of reading): {}",
        window.as_secs(),
        drained.ending
    );
    assert!(stats.all_ok(), "the good client's echoes failed: {stats}");
}

// ---------------------------------------------------------------------------------------
// 2. Slow consumers in a busy chat room
// ---------------------------------------------------------------------------------------

fn chat_path(room: &str) -> String {
    format!("/csp/user/Chat.Server.cls?room={room}")
}

/// Joins `room` and waits until its user list has at least `members` names.
async fn join_chat(demo: &Demo, room: &str, members: usize) -> WebSocket<Transport> {
    let mut ws = open_ws(demo, &chat_path(room)).await;
    for _ in 0..50 {
        let msg = ws.read(0, T).await.expect("chat message while joining");
        let v: Value = serde_json::from_str(msg.as_text().unwrap_or("null")).unwrap_or(Value::Null);
        if v["Type"] == "userlist" && v["Users"].as_array().map_or(0, Vec::len) >= members {
            return ws;
        }
    }
    panic!("room {room} never listed {members} members");
}

/// A chat line's index and publish time (µs since the test's epoch), if `msg` is one.
fn chat_line(msg: &ws_session::Message) -> Option<(usize, u64)> {
    let v: Value = serde_json::from_str(msg.as_text()?).ok()?;
    if v["Type"] != "Chat" {
        return None;
    }
    let mut fields = v["Message"].as_str()?.split(':');
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// What the good member saw: distinct lines, latencies (publish to receipt), first error.
struct Received {
    lines: usize,
    latencies: Vec<Duration>,
    error: Option<String>,
}

async fn slow_consumer(name: &str, line_len: usize, lines: usize) {
    // At most this many lines (and 512 KiB) between the publisher and the good member, so
    // that a member who reads is never a slow consumer.
    let window = 50.min((512 << 10) / line_len).max(1);
    let demo = Demo::start(&[]);
    warm_up(&demo).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    let (mut slow, slow_head) =
        raw_upgrade(demo.addr, &chat_path("busy"), &[], Buffers::Small, T).await.expect("slow member");
    assert_eq!(slow_head.status, Some(101), "slow member's handshake: {slow_head}");
    let good = join_chat(&demo, "busy", 2).await;
    let mut publisher = join_chat(&demo, "busy", 3).await;

    let epoch = Instant::now();
    let seen = Arc::new(AtomicUsize::new(0));
    let good_task = {
        let seen = seen.clone();
        let mut good = good;
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut got = vec![false; lines];
            let mut received = Received { lines: 0, latencies: Vec::with_capacity(lines), error: None };
            for _ in 0..lines * 2 + 1000 {
                if received.lines == lines {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match good.read(0, left).await {
                    Ok(msg) => {
                        if let Some((i, sent_us)) = chat_line(&msg).filter(|(i, _)| *i < lines && !got[*i]) {
                            got[i] = true;
                            received.lines += 1;
                            let now_us = epoch.elapsed().as_micros() as u64;
                            received.latencies.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
                            seen.store(received.lines, Ordering::Release);
                        }
                    }
                    Err(e) => {
                        received.error = Some(e.to_string());
                        break;
                    }
                }
            }
            (received, good)
        })
    };

    // The publisher sends as fast as the good member keeps up, and reads its own copies.
    let padding = "x".repeat(line_len);
    let mut sent = 0;
    let mut own = 0;
    let mut publish_error = None;
    let publish_deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..lines * 1000 {
        if (sent == lines && own == lines) || Instant::now() > publish_deadline {
            break;
        }
        if sent < lines && sent - seen.load(Ordering::Acquire) < window && sent - own < window {
            let head = format!("{sent:06}:{:013}:", epoch.elapsed().as_micros());
            let text = format!("{head}{}", &padding[head.len().min(line_len)..]);
            let step = async {
                publisher.write(&json!({ "Message": text }).to_string()).await?;
                publisher.flush().await
            };
            if let Err(e) = step.await {
                publish_error = Some(format!("write {sent}: {e}"));
                break;
            }
            sent += 1;
        } else if own < sent {
            match publisher.read(0, T).await {
                Ok(msg) => own += usize::from(chat_line(&msg).is_some()),
                Err(e) => {
                    publish_error = Some(format!("own copy {own}: {e}"));
                    break;
                }
            }
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let publish_secs = epoch.elapsed().as_secs_f64();
    let failed = |why: String| Received { lines: 0, latencies: Vec::new(), error: Some(why) };
    let received = match timeout(Duration::from_secs(60), good_task).await {
        Ok(Ok((received, _good))) => received,
        Ok(Err(e)) => failed(format!("good member's task: {e}")),
        Err(_) => failed("good member's task hung".into()),
    };

    // Now the slow member reads: data frames, then the server's Close.
    let drained = read_to_close(&mut slow, slow_head.leftover, Duration::from_secs(20)).await;
    let peak = sampler.finish(&demo);
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: {name} line_bytes={line_len} published={sent}/{lines} in {publish_secs:.1}s \
         publisher_error={publish_error:?} slow_end={} slow_frames_before_end={} slow_bytes={}",
        drained.ending, drained.frames, drained.bytes
    );
    println!(
        "hostile: {name} {rss} good_lines={}/{lines} good_p99_ms={} good_error={:?}",
        received.lines,
        ms(p99(&received.latencies)),
        received.error
    );
    assert!(rss.growth() <= 16 * MIB, "server RSS grew {} KiB (> 16 MiB) with a slow consumer", rss.growth());
    assert!(
        matches!(&drained.ending, Ending::Close { code: Some(1008), reason } if reason == "slow consumer"),
        "the slow member did not get Close 1008 \"slow consumer\": {}",
        drained.ending
    );
    assert_eq!(publish_error, None, "the publisher failed");
    assert_eq!(received.lines, lines, "the good member missed lines ({:?})", received.error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_4k() {
    slow_consumer("slow_consumer_4k", 4096, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_30k() {
    slow_consumer("slow_consumer_30k", 30 * 1024, 600).await;
}

// ---------------------------------------------------------------------------------------
// 3. Slow loris
// ---------------------------------------------------------------------------------------

const PARTIAL_HEAD: &[u8] = b"GET /csp/user/MyApp.MyWebSocketServer.cls HTTP/1.1\r\nHost: 127.0.0.1\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris() {
    const REQUEST_TIMEOUT: u64 = 5;
    const N: usize = 3000;
    let demo = Demo::start(&["--request-timeout", &REQUEST_TIMEOUT.to_string()]);
    let good = GoodEcho::start(&demo).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    let opening = Instant::now();
    let (stalled, errors) = open_stalled(demo.addr, N, PARTIAL_HEAD).await;
    let opened_in = opening.elapsed().as_secs_f64();
    let all_open = demo.rss();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second_later = demo.rss();
    let open_rss = Rss { before, peak: all_open.max(second_later), after: second_later };

    // The server drops them: 408 or EOF within the request timeout (+ 10 s).
    let within = Duration::from_secs(REQUEST_TIMEOUT + 10);
    let mut set = JoinSet::new();
    for mut stream in stalled.into_iter() {
        set.spawn(async move { read_head(&mut stream, within).await.to_string() });
    }
    let mut answers = Vec::with_capacity(N);
    while let Some(joined) = set.join_next().await {
        answers.push(joined.unwrap_or_else(|e| format!("task: {e}")));
    }
    // Dropped: a 408, or the connection closed (EOF, or a reset) without an answer.
    let dropped = answers
        .iter()
        .filter(|a| *a == "HTTP 408" || a.starts_with("no answer (eof") || a.starts_with("no answer (reset"))
        .count();
    let answers = tally(answers);
    let peak = sampler.finish(&demo);
    let stats = good.finish().await;
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: slow_loris opened={}/{N} in {opened_in:.2}s connect_errors={} open: {open_rss} (all_open={all_open} 1s_later={second_later}) \
         answers={answers:?}",
        N - errors.len(),
        errors.len()
    );
    println!("hostile: slow_loris {rss} {stats}");
    assert!(errors.is_empty(), "could not open every stalled connection: {:?}", errors.first());
    assert!(
        open_rss.growth() <= 12 * MIB,
        "server RSS grew {} KiB (> 12 MiB) with {N} stalled request heads",
        open_rss.growth()
    );
    assert_eq!(dropped, N, "not every stalled connection got 408 or EOF in {within:?}: {answers:?}");
    assert!(stats.all_ok(), "the good client's echoes failed: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_cap() {
    const CAP: usize = 100;
    let demo = Demo::start(&["--max-pending-handshakes", &CAP.to_string()]);
    warm_up(&demo).await;
    let before = demo.rss();
    let (stalled, errors) = open_stalled(demo.addr, CAP, PARTIAL_HEAD).await;
    assert!(errors.is_empty(), "could not open the stalled connections: {:?}", errors.first());
    // Settle: the server has accepted them (not a timing assertion).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut over_cap = Vec::new();
    for _ in 0..10 {
        let answer = match raw_upgrade(demo.addr, ECHO, &[], Buffers::Default, Duration::from_secs(2)).await {
            Ok((_stream, head)) => head.to_string(),
            Err(e) => format!("connect failed ({})", e.kind()),
        };
        over_cap.push(answer);
    }
    let peak = demo.hwm();
    drop(stalled);
    // Once the stalled ones are gone, a handshake is accepted again (bounded retries).
    let mut again = String::from("never tried");
    for _ in 0..50 {
        again = match raw_upgrade(demo.addr, ECHO, &[], Buffers::Default, T).await {
            Ok((_stream, head)) => head.to_string(),
            Err(e) => format!("connect failed ({})", e.kind()),
        };
        if again == "HTTP 101" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: slow_loris_cap cap={CAP} over_cap={:?} after_release={again:?} {rss}",
        tally(over_cap.clone())
    );
    assert!(
        over_cap.iter().all(|a| a == "HTTP 503"),
        "connections over the cap of {CAP} pending handshakes did not all get 503 within 2 s: {over_cap:?}"
    );
    assert_eq!(again, "HTTP 101", "no handshake accepted after the stalled connections closed");
}

/// Slow-loris against the admin listener (`--admin-addr`): it serves 64 requests at a time and
/// closes the rest at once, drops each stalled head at the request timeout, costs the server
/// little memory, never disturbs the main listener, and serves /metrics again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_admin() {
    const REQUEST_TIMEOUT: u64 = 3;
    const N: usize = 1000;
    let timeout_flag = REQUEST_TIMEOUT.to_string();
    let demo = Demo::start(&["--metrics", "--request-timeout", &timeout_flag, "--admin-addr", "127.0.0.1:0"]);
    let admin = demo.admin.expect("the demo printed its admin address");
    let good = GoodEcho::start(&demo).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    let (stalled, errors) = open_stalled(admin, N, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
    let within = Duration::from_secs(REQUEST_TIMEOUT + 10);
    let mut set = JoinSet::new();
    for mut stream in stalled.into_iter() {
        set.spawn(async move { read_head(&mut stream, within).await.to_string() });
    }
    let mut answers = Vec::with_capacity(N);
    while let Some(joined) = set.join_next().await {
        answers.push(joined.unwrap_or_else(|e| format!("task: {e}")));
    }
    let dropped = answers
        .iter()
        .filter(|a| a.starts_with("no answer (eof") || a.starts_with("no answer (reset"))
        .count();
    let answers = tally(answers);
    let peak = sampler.finish(&demo);
    // Served again once they are gone.
    let metrics = match raw_connect(admin, Buffers::Default).await {
        Ok(mut stream) => {
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
            read_head(&mut stream, T).await.to_string()
        }
        Err(e) => format!("connect failed ({})", e.kind()),
    };
    let stats = good.finish().await;
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: slow_loris_admin stalled={}/{N} answers={answers:?} metrics_after={metrics:?} {rss} {stats}",
        N - errors.len()
    );
    assert!(errors.is_empty(), "could not open every stalled connection: {:?}", errors.first());
    assert_eq!(dropped, N, "not every stalled admin connection was closed in {within:?}: {answers:?}");
    assert!(
        rss.growth() <= 4 * MIB,
        "server RSS grew {} KiB (> 4 MiB) with {N} stalled admin heads",
        rss.growth()
    );
    assert_eq!(metrics, "HTTP 200", "/metrics not served after the stalled connections");
    assert!(stats.all_ok(), "the good client's echoes failed: {stats}");
}

// ---------------------------------------------------------------------------------------
// 4. Graceful shutdown on SIGTERM / SIGINT with many clients
// ---------------------------------------------------------------------------------------

/// How one client's connection ended.
enum Outcome {
    /// It never got its first echo.
    NotUp(String),
    /// The close code it saw (1006: the connection died without a Close).
    Closed(u16),
    /// It neither got a Close nor lost the connection.
    Open(String),
}

/// Connects (through `gate`), does one echo, reports on `up`, then reads until the
/// connection ends (answering the server's Close, as ws-session does).
async fn client_until_close(url: String, gate: Arc<Semaphore>, up: mpsc::UnboundedSender<bool>) -> Outcome {
    let first = async {
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let (mut ws, _) = connect(&url, &ConnectOptions::default()).await.map_err(|e| e.to_string())?;
        echo_once(&mut ws, "up?").await?;
        Ok::<_, String>(ws)
    };
    let mut ws = match timeout(Duration::from_secs(60), first).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let _ = up.send(false);
            return Outcome::NotUp(e);
        }
        Err(_) => {
            let _ = up.send(false);
            return Outcome::NotUp("timed out".into());
        }
    };
    let _ = up.send(true);
    for _ in 0..1000 {
        match ws.read(0, Duration::from_secs(300)).await {
            Ok(_) => continue, // "Server timed-out at ..." while idle
            Err(Error::Closed { code, .. }) => return Outcome::Closed(code.0),
            Err(e) => match e.close_code() {
                Some(code) => return Outcome::Closed(code.0),
                None => return Outcome::Open(e.to_string()),
            },
        }
    }
    Outcome::Open("too many messages".into())
}

async fn shutdown_with_clients(name: &str, signal: libc::c_int, n: usize) {
    const SHUTDOWN_TIMEOUT: u64 = 10;
    let mut demo = Demo::start(&["--shutdown-timeout", &SHUTDOWN_TIMEOUT.to_string()]);
    warm_up(&demo).await;
    let before = demo.rss();

    let gate = Arc::new(Semaphore::new(CONNECT_BURST));
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    let mut clients = JoinSet::new();
    for _ in 0..n {
        clients.spawn(client_until_close(demo.url(ECHO), gate.clone(), up_tx.clone()));
    }
    drop(up_tx);
    let mut up = 0;
    let up_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for _ in 0..n {
        match tokio::time::timeout_at(up_deadline, up_rx.recv()).await {
            Ok(Some(ok)) => up += usize::from(ok),
            _ => break,
        }
    }
    let peak = demo.hwm();

    demo.signal(signal);
    let signalled = Instant::now();
    let exit = demo.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT + 2)).await;
    let exit_secs = signalled.elapsed().as_secs_f64();
    let mut outcomes = Vec::with_capacity(n);
    let clients_deadline = tokio::time::Instant::from_std(signalled + Duration::from_secs(15));
    for _ in 0..n {
        match tokio::time::timeout_at(clients_deadline, clients.join_next()).await {
            Ok(Some(Ok(outcome))) => outcomes.push(outcome),
            Ok(Some(Err(e))) => outcomes.push(Outcome::Open(format!("task: {e}"))),
            Ok(None) | Err(_) => break,
        }
    }
    let finished = outcomes.len();
    let got_1001 = outcomes.iter().filter(|o| matches!(o, Outcome::Closed(1001))).count();
    let kinds = tally(outcomes.iter().map(|o| match o {
        Outcome::NotUp(_) => "not_up".to_string(),
        Outcome::Closed(code) => format!("close_{code}"),
        Outcome::Open(_) => "open".to_string(),
    }));
    let first_problem = outcomes.iter().find_map(|o| match o {
        Outcome::NotUp(e) | Outcome::Open(e) => Some(e.clone()),
        Outcome::Closed(_) => None,
    });
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: {name} clients={n} up={up} got_1001={got_1001} outcomes={kinds:?} no_end_in_15s={} \
         first_problem={first_problem:?}",
        n - finished
    );
    println!("hostile: {name} exit={exit:?} exit_after_s={exit_secs:.2} {rss}");
    assert_eq!(up, n, "not every client was up before the signal");
    assert!(got_1001 * 100 >= n * 99, "only {got_1001} of {n} clients got Close 1001: {kinds:?}");
    let status =
        exit.unwrap_or_else(|| panic!("demo still running {} s after the signal", SHUTDOWN_TIMEOUT + 2));
    assert!(status.success(), "demo exited with {status} after the signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_2000_clients() {
    shutdown_with_clients("sigterm_2000_clients", libc::SIGTERM, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_50_clients() {
    shutdown_with_clients("sigint_50_clients", libc::SIGINT, 50).await;
}

// ---------------------------------------------------------------------------------------
// 5. Cross-site Origin
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_origin() {
    let demo = Demo::start(&[]);
    warm_up(&demo).await;
    let before = demo.rss();
    let same_origin = format!("http://{}", demo.addr);
    let mut answers = Vec::new();
    for origin in [Some("http://evil.example"), Some(same_origin.as_str()), None] {
        let extra: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let answer = match raw_upgrade(demo.addr, ECHO, &extra, Buffers::Default, T).await {
            Ok((_stream, head)) => head.to_string(),
            Err(e) => format!("connect failed ({})", e.kind()),
        };
        answers.push(answer);
    }
    let rss = Rss { before, peak: demo.hwm(), after: demo.rss() };

    println!(
        "hostile: cross_site_origin evil={:?} same_origin={:?} no_origin={:?} {rss}",
        answers[0], answers[1], answers[2]
    );
    assert_eq!(answers[0], "HTTP 403", "Origin: http://evil.example with Host {} was not refused", demo.addr);
    assert_eq!(answers[1], "HTTP 101", "Origin: {same_origin} matching Host was not accepted");
    assert_eq!(answers[2], "HTTP 101", "a handshake without Origin was not accepted");
}

// ---------------------------------------------------------------------------------------
// 6. A handshake that completes during shutdown
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_handshake_during_shutdown() {
    let mut demo = Demo::start(&["--shutdown-timeout", "10"]);
    let mut echo = open_ws(&demo, ECHO).await;
    echo_once(&mut echo, "warm-up").await.expect("warm-up echo");
    let before = demo.rss();
    // The echo client reads (and so answers the server's Close) until its connection ends.
    let echo_task = tokio::spawn(async move {
        for _ in 0..1000 {
            match echo.read(0, Duration::from_secs(30)).await {
                Ok(_) => continue,
                Err(e) => return e.close_code().map_or_else(|| e.to_string(), |c| c.0.to_string()),
            }
        }
        "too many messages".to_string()
    });

    let request = upgrade_request(&demo.addr.to_string(), ECHO, &[]);
    let half = request.len() / 2;
    let mut raw = raw_connect(demo.addr, Buffers::Default).await.expect("raw connection");
    raw.write_all(&request[..half]).await.expect("first half of the head");
    // Settle: the server is reading this head, and then has seen the signal (no assertion).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let peak = demo.hwm();
    demo.signal(libc::SIGTERM);
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The late client finishes its head and reads the answer (answering a Close after a
    // 101) while the exit is watched: at most 3 s after the signal.
    let late_client = async {
        let _ = raw.write_all(&request[half..]).await; // the server may have answered already
        let head = read_head(&mut raw, Duration::from_secs(5)).await;
        match head.status {
            Some(101) => {
                let drained = read_to_close(&mut raw, head.leftover, Duration::from_secs(5)).await;
                format!("HTTP 101 then {}", drained.ending)
            }
            _ => head.to_string(),
        }
    };
    let exit_watch = async {
        let exit = demo.wait_exit(Duration::from_secs(3).saturating_sub(signalled.elapsed())).await;
        (exit, signalled.elapsed().as_secs_f64())
    };
    let (answer, (exit, exit_secs)) = tokio::join!(late_client, exit_watch);
    let echo_end = match timeout(T, echo_task).await {
        Ok(Ok(end)) => end,
        _ => "hung".to_string(),
    };
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: late_handshake_during_shutdown late_answer={answer:?} echo_client_end={echo_end} \
         exit={exit:?} exit_after_s={exit_secs:.2} {rss}"
    );
    assert!(
        answer == "HTTP 503" || answer.starts_with("HTTP 101 then close_1001"),
        "a handshake completed during shutdown got {answer:?}, not 503 (nor 101 + Close 1001)"
    );
    let status =
        exit.unwrap_or_else(|| panic!("demo still running 3 s after SIGTERM (it waited out a timeout)"));
    assert!(status.success(), "demo exited with {status} after SIGTERM");
}

// ---------------------------------------------------------------------------------------
// 7. Zip bombs (permessage-deflate)
// ---------------------------------------------------------------------------------------

/// The demo's largest message: ws-server's default `max_message_size`. A compressed
/// message's limit applies to its inflated size.
const MAX_MESSAGE: usize = ws_server::DEFAULT_MAX_MESSAGE;

/// The bound on the server's RSS growth under zip bombs sent whole (MiB): each of its
/// worker threads (one per CPU) inflates one message at a time, up to `MAX_MESSAGE` and no
/// further, and drops it on the 1009; 32 MiB for the rest. One bomb inflated in full (4 x
/// `MAX_MESSAGE`), or bombs kept after their 1009, pass it on 2 to 4 CPUs.
fn zip_bomb_rss_mib(clients: usize) -> u64 {
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(clients) as u64;
    workers * (MAX_MESSAGE >> 20) as u64 + 32
}

/// The bound on the server's RSS growth while zip bombs' first fragments are held (MiB):
/// each socket holds its message inflated so far, at most `MAX_MESSAGE`, plus 32 MiB.
fn zip_bomb_held_rss_mib(clients: usize) -> u64 {
    clients as u64 * (MAX_MESSAGE >> 20).max(1) as u64 + 32
}

/// The offer a raw attacker makes (the server's policy adds the no-context-takeover params).
const DEFLATE_OFFER: (&str, &str) = ("Sec-WebSocket-Extensions", PERMESSAGE_DEFLATE);

/// Did the 101 agree to permessage-deflate?
fn deflate_agreed(head: &Head) -> bool {
    head.field("Sec-WebSocket-Extensions").is_some_and(|v| v.starts_with(PERMESSAGE_DEFLATE))
}

/// A masked client frame: a binary message of `zeros` zero bytes compressed on its own
/// (RSV1 set; about 1 KiB on the wire per MiB inflated). With `fin` false it is the first
/// fragment of a message that never ends.
fn zip_bomb_frame(zeros: usize, fin: bool) -> Vec<u8> {
    // ws-proto's encoder makes a server frame (unmasked); its payload is what a client sends.
    let server_frame = ws_proto::encode_compressed_frame(MessageKind::Binary, &vec![0; zeros], 15, 9);
    let Ok(HeaderParse::Complete { header, header_len }) = FrameHeader::parse(&server_frame) else {
        panic!("encode_compressed_frame made no frame header");
    };
    assert_eq!(header.rsv, 0b100, "not a compressed frame (RSV1)");
    let [a, b, c, d, ..] = random_u64().to_le_bytes();
    let key = [a, b, c, d];
    let mut payload = server_frame[header_len..].to_vec();
    ws_proto::apply_mask(&mut payload, key, 0);
    let header = FrameHeader { fin, mask: Some(key), ..header };
    let mut frame = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut frame);
    frame.extend_from_slice(&payload);
    frame.to_vec()
}

/// Opens `n` raw connections offering permessage-deflate; each must get a 101 agreeing to it.
async fn deflate_attackers(demo: &Demo, n: usize) -> Vec<(TcpStream, Head)> {
    let mut attackers = Vec::with_capacity(n);
    for i in 0..n {
        let (stream, head) =
            raw_upgrade(demo.addr, ECHO, &[DEFLATE_OFFER], Buffers::Default, T).await.expect("attacker");
        assert_eq!(head.status, Some(101), "attacker {i}'s handshake: {head}");
        assert!(
            deflate_agreed(&head),
            "attacker {i}: the 101 did not agree to permessage-deflate:\n{}",
            head.text
        );
        attackers.push((stream, head));
    }
    attackers
}

/// Writes `bytes` within `T`: "sent", "write failed (…)" or "write blocked".
async fn send_outcome(stream: &mut TcpStream, bytes: &[u8]) -> String {
    match timeout(T, stream.write_all(bytes)).await {
        Ok(Ok(())) => "sent".to_string(),
        Ok(Err(e)) => format!("write failed ({})", e.kind()),
        Err(_) => "write blocked".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_bomb() {
    const CLIENTS: usize = 20;
    const INFLATED: usize = 4 * MAX_MESSAGE;
    let bomb = Arc::new(zip_bomb_frame(INFLATED, true));
    let demo = Demo::start(&[]);
    let good = GoodEcho::start(&demo).await;
    let attackers = deflate_attackers(&demo, CLIENTS).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    // Every attacker has its 101 before the first bomb goes off; then all send at once.
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for (mut stream, head) in attackers {
        let (bomb, start) = (bomb.clone(), start.clone());
        set.spawn(async move {
            start.wait().await;
            let sent = send_outcome(&mut stream, &bomb).await;
            let drained = read_to_close(&mut stream, head.leftover, Duration::from_secs(30)).await;
            (sent, drained.ending.to_string())
        });
    }
    let mut sends = Vec::with_capacity(CLIENTS);
    let mut endings = Vec::with_capacity(CLIENTS);
    while let Some(joined) = set.join_next().await {
        let (sent, ending) = joined.unwrap_or_else(|e| ("task failed".into(), format!("task: {e}")));
        sends.push(sent);
        endings.push(ending);
    }
    let got_1009 = endings.iter().filter(|e| e.starts_with("close_1009")).count();
    let peak = sampler.finish(&demo);
    let stats = good.finish().await;
    let rss = Rss { before, peak, after: demo.rss() };

    println!(
        "hostile: zip_bomb clients={CLIENTS} inflates_to_mib={} frame_bytes={} max_message_mib={} got_1009={got_1009} \
         sends={:?} endings={:?}",
        INFLATED >> 20,
        bomb.len(),
        MAX_MESSAGE >> 20,
        tally(sends),
        tally(endings.clone())
    );
    println!("hostile: zip_bomb {rss} bound_mib={} {stats}", zip_bomb_rss_mib(CLIENTS));
    assert_eq!(got_1009, CLIENTS, "not every zip bomb got Close 1009: {:?}", tally(endings));
    let bound = zip_bomb_rss_mib(CLIENTS);
    assert!(
        rss.growth() <= bound * MIB,
        "server RSS grew {} KiB (> {bound} MiB) under {CLIENTS} zip bombs of {} MiB",
        rss.growth(),
        INFLATED >> 20
    );
    assert!(stats.all_ok(), "the good client's echoes failed: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_bomb_held() {
    const CLIENTS: usize = 20;
    // Just under the limit, in a first fragment: a message that may still end well.
    const INFLATED: usize = MAX_MESSAGE - (64 << 10);
    let bomb = Arc::new(zip_bomb_frame(INFLATED, false));
    let demo = Demo::start(&[]);
    let good = GoodEcho::start(&demo).await;
    let attackers = deflate_attackers(&demo, CLIENTS).await;
    let before = demo.rss();
    let sampler = Sampler::start(&demo);

    let mut held = Vec::with_capacity(CLIENTS);
    let mut sends = Vec::with_capacity(CLIENTS);
    for (mut stream, head) in attackers {
        sends.push(send_outcome(&mut stream, &bomb).await);
        held.push((stream, head));
    }
    // The fragments never end; the server has 3 s to inflate them (settling, no assertion).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_rss = demo.rss();
    let peak = sampler.finish(&demo);
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = good.finish().await;
    let rss = Rss { before, peak, after: demo.rss() };
    let bound = zip_bomb_held_rss_mib(CLIENTS);

    println!(
        "hostile: zip_bomb_held clients={CLIENTS} first_fragment_inflates_to_mib={} frame_bytes={} sends={:?} \
         rss_kib_while_held={held_rss}",
        INFLATED >> 20,
        bomb.len(),
        tally(sends)
    );
    println!("hostile: zip_bomb_held {rss} bound_mib={bound} {stats}");
    assert!(
        rss.growth() <= bound * MIB,
        "server RSS grew {} KiB (> {bound} MiB) with {CLIENTS} held fragments of {} KiB that inflate to {} MiB",
        rss.growth(),
        bomb.len() >> 10,
        INFLATED >> 20
    );
    assert!(stats.all_ok(), "the good client's echoes failed: {stats}");
}
