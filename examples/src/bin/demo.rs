//! The demo server: the seeds' echo, chat and detached examples and the chat page.
//!
//! `cargo run --release -p examples --bin demo [-- --addr 127.0.0.1:8080 --echo-timeout 10]`
//! then open http://127.0.0.1:8080/ (the chat; `?room=NAME` for another room).
//! With `--redis redis://127.0.0.1:6379` the node joins a cluster: several demos sharing one
//! Redis serve one chat (rooms and user lists span the nodes) and reach each other's shared
//! sockets.
//! - echo:     ws://127.0.0.1:8080/csp/user/MyApp.MyWebSocketServer.cls
//! - chat:     ws://127.0.0.1:8080/csp/user/Chat.Server.cls?room=default
//! - detached: ws://127.0.0.1:8080/csp/user/MyApp.Detached.cls
//! - broadcast (for the load benchmark): ws://127.0.0.1:8080/csp/user/Bench.Broadcast.cls
//!
//! With `--tls-cert cert.pem --tls-key key.pem` the same port speaks https and wss (the
//! files reload on SIGHUP or when they change).
//!
//! `--metrics` serves Prometheus metrics at `/metrics`; `--admin-token TOKEN` turns on the
//! live admin page at `/admin?token=TOKEN`; `--admin-addr 127.0.0.1:9090` serves both on an
//! address of their own instead.
//!
//! SIGTERM or Ctrl-C stops it gracefully: every socket gets 1001, then it exits.
//! `demo --help` lists the limits it can set.

use std::time::Duration;

use clap::Parser;
use examples::demo_classes;
use examples::detached::worker;
use ws_cluster::{ClusterConfig, ClusterNode};
use ws_server::{OriginPolicy, Registry, Server};

/// The seeds' echo, chat and detached classes and the chat page, on one port.
#[derive(Debug, Parser)]
#[command(name = "demo", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Seconds the echo class waits for a message before it says it timed out.
    #[arg(long, default_value_t = 10.0)]
    echo_timeout: f64,
    /// Seconds before the detached example's worker opens a detached socket.
    #[arg(long, default_value_t = 1.0)]
    detached_delay: f64,
    /// Join a cluster through this Redis (e.g. redis://127.0.0.1:6379).
    #[arg(long)]
    redis: Option<String>,
    /// Seconds a peer may accept no bytes while output waits before it is dropped.
    #[arg(long, default_value_t = 30.0)]
    write_timeout: f64,
    /// Largest message accepted, in bytes (after inflation for a compressed one); larger ones
    /// get 1009.
    #[arg(long, default_value_t = ws_server::DEFAULT_MAX_MESSAGE)]
    max_message_size: usize,
    /// Bytes of queued output over which a socket stops reading.
    #[arg(long, default_value_t = 1 << 20)]
    max_write_buffer: usize,
    /// Bytes of pushed frames (room messages) one socket may let pile up before it is closed
    /// as a slow consumer (1008).
    #[arg(long, default_value_t = 1 << 20)]
    max_queued_bytes: usize,
    /// Seconds a client has to send its request head.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Connections in their handshake at once; more get 503.
    #[arg(long, default_value_t = 4096)]
    max_pending_handshakes: usize,
    /// Connections at once; more get 503.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Seconds a graceful shutdown waits for sockets to close.
    #[arg(long, default_value_t = 5.0)]
    shutdown_timeout: f64,
    /// Serve https and wss with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Accept browser pages from this origin (repeatable); without it, only pages served by
    /// the host they connect to (cross-site requests get 403).
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Refuse permessage-deflate (on by default: no context kept, broadcasts compressed once).
    #[arg(long)]
    no_deflate: bool,
    /// permessage-deflate with context takeover in both directions (when the client allows):
    /// better compression, a compression context per socket.
    #[arg(long, conflicts_with = "no_deflate")]
    deflate_takeover: bool,
    /// Accept any origin (turns the cross-site check off).
    #[arg(long, conflicts_with = "allow_origin")]
    any_origin: bool,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long)]
    metrics: bool,
    /// Turn on the admin page at /admin for requests carrying this token (?token= or
    /// Authorization: Bearer).
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Serve /metrics and /admin on this address of their own (plain HTTP, e.g.
    /// 127.0.0.1:9090) instead of on --addr.
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
    /// tokio's current-thread scheduler whatever the CPUs (`current`).
    #[arg(long, value_name = "current")]
    runtime: Option<String>,
    /// tokio's global_queue_interval.
    #[arg(long)]
    global_queue_interval: Option<u32>,
    /// tokio's event_interval.
    #[arg(long)]
    event_interval: Option<u32>,
    /// tokio's max_io_events_per_tick.
    #[arg(long)]
    max_io_events: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // ws-server's runtime (fair to a thousand busy sockets); the flags below tune it.
    let mut runtime = ws_server::runtime_builder();
    if let Some(n) = args.global_queue_interval {
        runtime.global_queue_interval(n);
    }
    if let Some(n) = args.event_interval {
        runtime.event_interval(n);
    }
    if let Some(n) = args.max_io_events {
        runtime.max_io_events_per_tick(n);
    }
    if args.runtime.as_deref() == Some("current") {
        runtime = tokio::runtime::Builder::new_current_thread();
        runtime.enable_all();
    }
    runtime.build()?.block_on(serve(args))
}

async fn serve(args: Args) -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let secs = Duration::from_secs_f64;
    let echo_timeout = secs(args.echo_timeout);
    let origins = if args.any_origin {
        OriginPolicy::Any
    } else if !args.allow_origin.is_empty() {
        OriginPolicy::AllowList(args.allow_origin.clone())
    } else {
        OriginPolicy::SameHost
    };

    let registry = Registry::new();
    let cluster = match &args.redis {
        Some(url) => {
            Some(ClusterNode::join(&registry, ClusterConfig::new(url)).await.map_err(std::io::Error::other)?)
        }
        None => None,
    };
    let (ids, id_queue) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = demo_classes(Server::builder().registry(registry), echo_timeout, ids);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls_pem_files(cert, key);
    }
    if let Some(addr) = args.admin_addr {
        builder = builder.admin_addr(addr);
    }
    if let Some(token) = &args.admin_token {
        builder = builder.admin_token(token);
    }
    if args.no_deflate {
        builder = builder.deflate(None);
    } else if args.deflate_takeover {
        builder = builder.deflate(Some(
            ws_server::DeflateConfig::default()
                .server_no_context_takeover(false)
                .client_no_context_takeover(false),
        ));
    }
    let server = builder
        .origins(origins)
        .write_timeout(Some(secs(args.write_timeout)))
        .max_message_size(args.max_message_size)
        .max_write_buffer(args.max_write_buffer)
        .max_queued_bytes(args.max_queued_bytes)
        .request_timeout(secs(args.request_timeout))
        .max_pending_handshakes(args.max_pending_handshakes)
        .max_connections(args.max_connections)
        .shutdown_timeout(secs(args.shutdown_timeout))
        .metrics(args.metrics)
        .bind(&args.addr)
        .await?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    println!("demo listening on {scheme}://{}/", server.local_addr());
    if let Some(addr) = server.admin_addr() {
        println!("demo serving /metrics and /admin on http://{addr}/");
    }
    let worker = worker(server.registry(), id_queue, secs(args.detached_delay), Duration::from_secs(30));
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        tokio::select! {
            () = worker => {}
            _ = stop.cancelled() => {}
        }
    });

    // Until SIGTERM or Ctrl-C; then every socket gets 1001 and every on_post_server runs
    // before this returns (bounded by the shutdown timeout).
    server.run_until(ws_server::shutdown_signal()).await?;
    if let Some(cluster) = cluster {
        cluster.leave().await;
    }
    Ok(())
}
