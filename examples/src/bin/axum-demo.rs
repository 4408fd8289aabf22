//! The demo's classes inside an axum application: axum serves its own routes (`GET /hello`)
//! and hands every other request to ws-server's [`Endpoint`], which upgrades the class URLs
//! (the same as the demo's) and serves the chat page, on one port.
//!
//! `cargo run --release -p examples --bin axum-demo -- --addr 127.0.0.1:8080`
//! - `curl http://127.0.0.1:8080/hello` -> `hello`
//! - echo:     ws://127.0.0.1:8080/csp/user/MyApp.MyWebSocketServer.cls
//! - chat:     ws://127.0.0.1:8080/csp/user/Chat.Server.cls?room=default (page at `/`)
//! - detached: ws://127.0.0.1:8080/csp/user/MyApp.Detached.cls
//!
//! Rooms, `open_server` and the detached worker use the endpoint's registry, as in the demo.
//! SIGTERM or Ctrl-C: axum stops accepting, every socket gets 1001, then it exits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use clap::Parser;
use examples::demo_classes;
use examples::detached::worker;
use ws_server::{Endpoint, OriginPolicy, Server};

/// The demo's classes and `GET /hello` in one axum Router.
#[derive(Debug, Parser)]
#[command(name = "axum-demo", version)]
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
    /// Accept any origin (turns the cross-site check off).
    #[arg(long)]
    any_origin: bool,
}

/// The application: its own routes, then the WebSocket endpoint for everything else.
fn app(endpoint: Endpoint) -> Router {
    Router::new().route("/hello", get(|| async { "hello" })).fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.upgrade_from(request, Some(peer)).await }
        },
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (ids, id_queue) = tokio::sync::mpsc::unbounded_channel();
    let origins = if args.any_origin { OriginPolicy::Any } else { OriginPolicy::SameHost };
    let endpoint = demo_classes(Server::builder(), Duration::from_secs_f64(args.echo_timeout), ids)
        .origins(origins)
        .build()?;
    let stop = endpoint.shutdown_handle();
    let detached = worker(
        endpoint.registry(),
        id_queue,
        Duration::from_secs_f64(args.detached_delay),
        Duration::from_secs(30),
    );
    let worker_stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = detached => {}
            _ = worker_stop.cancelled() => {}
        }
    });

    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    println!("axum-demo listening on http://{}/", listener.local_addr()?);
    let signal = async {
        ws_server::shutdown_signal().await;
        tracing::info!("shutdown signal: closing every socket");
    };
    axum::serve(listener, app(endpoint).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(signal)
        .await?;
    // axum has stopped; the upgraded sockets are ws-server's to close (1001, then each
    // on_post_server).
    let left = stop.shutdown().await;
    if left > 0 {
        tracing::warn!(left, "shutdown timeout passed with connections still open");
    }
    Ok(())
}
