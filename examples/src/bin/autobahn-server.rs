//! An echo server on `ws-session` that upgrades on any path, for the Autobahn|Testsuite's
//! `fuzzingclient` and for load tests: `autobahn-server --addr 127.0.0.1:9002`.
//! Prints `listening on ADDR` once bound (with port 0, the port the system chose).

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
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // The same runtime settings as our servers: ws-server's recommended runtime.
    ws_server::runtime_builder().build()?.block_on(serve(args.addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // The handshake's state lives in its own boxed future, freed once it is done,
            // so the socket's task holds only the socket and its read.
            let Ok(mut ws) = Box::pin(accept(stream, Config::default())).await else { return };
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
