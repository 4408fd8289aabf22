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
//! Runtime: [`ws_server::runtime_builder`] (tokio's current-thread scheduler when the process
//! may use one CPU, its multi-thread scheduler otherwise; set up so that a thousand busy
//! sockets are served in turn).
//! `--global-queue-interval N`, `--event-interval N` and `--max-io-events N` tune it;
//! `--runtime current` uses tokio's single-thread scheduler whatever the CPUs.

use std::time::Duration;

use examples::chat::{ChatServer, PAGE};
use examples::detached::{Detached, worker};
use examples::echo::MyWebSocketServer;
use ws_cluster::{ClusterConfig, ClusterNode};
use ws_server::{Registry, Server};

fn main() -> std::io::Result<()> {
    // ws-server's runtime (fair to a thousand busy sockets); the flags below tune it.
    let mut runtime = ws_server::runtime_builder();
    if let Some(n) = examples::arg_value("--global-queue-interval").and_then(|v| v.parse().ok()) {
        runtime.global_queue_interval(n);
    }
    if let Some(n) = examples::arg_value("--event-interval").and_then(|v| v.parse().ok()) {
        runtime.event_interval(n);
    }
    if let Some(n) = examples::arg_value("--max-io-events").and_then(|v| v.parse().ok()) {
        runtime.max_io_events_per_tick(n);
    }
    if examples::arg_value("--runtime").as_deref() == Some("current") {
        runtime = tokio::runtime::Builder::new_current_thread();
        runtime.enable_all();
    }
    runtime.build()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = examples::arg_value("--addr").unwrap_or_else(|| "127.0.0.1:8080".into());
    let secs = |name: &str, default: f64| {
        Duration::from_secs_f64(examples::arg_value(name).and_then(|v| v.parse().ok()).unwrap_or(default))
    };
    let echo_timeout = secs("--echo-timeout", 10.0);
    let detached_delay = secs("--detached-delay", 1.0);

    let registry = Registry::new();
    let cluster = match examples::arg_value("--redis") {
        Some(url) => Some(
            ClusterNode::join(&registry, ClusterConfig::new(&url)).await.map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let (ids, id_queue) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::builder()
        .registry(registry)
        .class("user", "MyApp.MyWebSocketServer", move || MyWebSocketServer { timeout: echo_timeout })
        .class("user", "Chat.Server", ChatServer::default)
        .class("user", "MyApp.Detached", move || Detached::new(ids.clone()))
        .class("user", "Bench.Broadcast", examples::broadcast::Broadcast::default)
        .page("/", "text/html; charset=utf-8", PAGE)
        .bind(&addr)
        .await?;
    println!("demo listening on http://{}/", server.local_addr());
    tokio::spawn(worker(server.registry(), id_queue, detached_delay, Duration::from_secs(30)));

    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    tokio::signal::ctrl_c().await?;
    // Stop accepting, close every socket with 1001, wait (bounded) for them.
    let left = shutdown.shutdown().await;
    tracing::info!(left, "shut down");
    if let Some(cluster) = cluster {
        cluster.leave().await;
    }
    let _ = running.await;
    Ok(())
}
