//! The fastwebsockets echo server to compare against, after that crate's
//! `examples/echo_server.rs` (hyper 1 upgrade, `FragmentCollector`, auto close and auto pong,
//! which are its defaults), on tokio's multi-thread runtime like ours:
//! `peer-fastwebsockets --addr 127.0.0.1:PORT` (any path); prints `listening on ADDR`.

use fastwebsockets::{OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fastwebsockets::FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        // As in the example: the connection task runs outside tokio's cooperative budget.
        let _ = tokio::task::unconstrained(handle_client(fut)).await;
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    // The same runtime settings as our servers: ws-server's recommended runtime.
    ws_server::runtime_builder().build()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::from_std(benches::listen(
        "The fastwebsockets echo server, after its examples/echo_server.rs (any path).",
        "127.0.0.1:9005",
    )?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ =
                http1::Builder::new().serve_connection(io, service_fn(server_upgrade)).with_upgrades().await;
        });
    }
}
