//! The tokio-tungstenite echo server over tokio-rustls, to compare with ours over TLS:
//! `peer-tungstenite-tls --addr 127.0.0.1:PORT --cert cert.pem --key key.pem` (any path
//! upgrades). The echo is `peer-tungstenite`'s, after tokio-tungstenite's
//! `examples/echo-server.rs`; the TLS is tokio-rustls' server example: rustls' defaults on the
//! ring provider, ALPN `http/1.1` (`benches::server_config`). Prints `listening on ADDR` once
//! bound.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The certificate and key to serve.
#[derive(Debug, Args)]
struct Certificate {
    /// The certificate chain, PEM (`gen-cert` writes one).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The certificate's private key, PEM.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

fn main() -> std::io::Result<()> {
    let (listener, config) = benches::listen_with(
        "The tokio-tungstenite echo server over tokio-rustls (any path).",
        "127.0.0.1:9443",
        |c: Certificate| benches::server_config(&c.cert, &c.key),
    )?;
    // The same runtime settings as our servers: ws-server's recommended runtime.
    ws_server::runtime_builder().build()?.block_on(serve(listener, config))
}

async fn serve(listener: std::net::TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(accept_connection(acceptor.clone(), stream));
    }
}

async fn accept_connection(acceptor: TlsAcceptor, stream: TcpStream) {
    let Ok(tls) = acceptor.accept(stream).await else { return };
    let Ok(ws_stream) = tokio_tungstenite::accept_async(tls).await else { return };
    let (write, read) = ws_stream.split();
    // As in the example: forward only text and binary messages.
    let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
}
