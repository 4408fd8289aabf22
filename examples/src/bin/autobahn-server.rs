//! An echo server on `ws-session` that upgrades on any path, for the Autobahn|Testsuite's
//! `fuzzingclient` and for load tests: `autobahn-server --addr 127.0.0.1:9002`.
//! Prints `listening on ADDR` once bound (with port 0, the port the system chose).
//! permessage-deflate is on by default with ws-server's policy (no context takeover either
//! way); `--deflate-takeover` keeps contexts, `--no-deflate` turns it off.

use clap::Parser;
use tokio::net::TcpListener;
use ws_session::{Config, Error, accept};

/// An echo server on ws-session for the Autobahn|Testsuite and load tests.
#[derive(Debug, Parser)]
#[command(name = "autobahn-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    addr: String,
    /// Refuse permessage-deflate.
    #[arg(long)]
    no_deflate: bool,
    /// permessage-deflate with context takeover in both directions (when the client allows).
    #[arg(long, conflicts_with = "no_deflate")]
    deflate_takeover: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // The same runtime settings as our servers: ws-server's recommended runtime.
    let deflate = if args.no_deflate {
        None
    } else if args.deflate_takeover {
        Some(
            ws_server::DeflateConfig::default()
                .server_no_context_takeover(false)
                .client_no_context_takeover(false),
        )
    } else {
        Some(ws_server::default_deflate())
    };
    let config = Config::default().deflate(deflate);
    ws_server::runtime_builder().build()?.block_on(serve(args.addr, config))
}

async fn serve(addr: String, config: Config) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            // The handshake's state lives in its own boxed future, freed once it is done,
            // so the socket's task holds only the socket and its read.
            let Ok(mut ws) = Box::pin(accept(stream, config)).await else { return };
            loop {
                match ws.read_message().await {
                    Ok(msg) => {
                        if ws.write_message(&msg).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        // Interop tests read this line to check the peer's Close arrived intact.
                        if let Error::Closed { code, reason } = &e {
                            println!("closed by peer: code={code} reason={reason:?}");
                        }
                        break;
                    }
                }
            }
        });
    }
}
