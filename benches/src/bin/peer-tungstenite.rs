//! The tokio-tungstenite echo server to compare against, after that crate's
//! `examples/echo-server.rs`: `peer-tungstenite --addr 127.0.0.1:PORT` (any path upgrades).
//! Prints `listening on ADDR` once bound.

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    // The same runtime settings as our servers: ws-server's recommended runtime.
    ws_server::runtime_builder().build()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::from_std(benches::listen(
        "The tokio-tungstenite echo server, after its examples/echo-server.rs (any path).",
        "127.0.0.1:9003",
    )?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(accept_connection(stream));
    }
}

async fn accept_connection(stream: TcpStream) {
    let Ok(ws_stream) = tokio_tungstenite::accept_async(stream).await else { return };
    let (write, read) = ws_stream.split();
    // As in the example: forward only text and binary messages.
    let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
}
