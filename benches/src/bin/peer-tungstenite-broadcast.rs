//! The tokio-tungstenite broadcast server to compare against, after that crate's
//! `examples/server.rs`: a map of per-peer unbounded channels; every message a peer sends is
//! pushed to every peer's channel (the sender's too, as the demo's room does), and each peer's
//! task writes its channel to its socket, so each socket encodes its copy separately.
//! `peer-tungstenite-broadcast --addr 127.0.0.1:PORT` (any path); prints `listening on ADDR`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_channel::mpsc::{UnboundedSender, unbounded};
use futures_util::{StreamExt, TryStreamExt, future, pin_mut};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Message;

type Tx = UnboundedSender<Message>;
type PeerMap = Arc<Mutex<HashMap<SocketAddr, Tx>>>;

async fn handle_connection(peer_map: PeerMap, raw_stream: TcpStream, addr: SocketAddr) {
    let Ok(ws_stream) = tokio_tungstenite::accept_async(raw_stream).await else { return };

    let (tx, rx) = unbounded();
    peer_map.lock().unwrap().insert(addr, tx);

    let (outgoing, incoming) = ws_stream.split();

    let broadcast_incoming = incoming.try_for_each(|msg| {
        if msg.is_text() || msg.is_binary() {
            let peers = peer_map.lock().unwrap();
            for recp in peers.values() {
                let _ = recp.unbounded_send(msg.clone());
            }
        }
        future::ok(())
    });

    let receive_from_others = rx.map(Ok).forward(outgoing);

    pin_mut!(broadcast_incoming, receive_from_others);
    future::select(broadcast_incoming, receive_from_others).await;

    peer_map.lock().unwrap().remove(&addr);
}

fn main() -> std::io::Result<()> {
    // The same runtime settings as our servers: ws-server's recommended runtime.
    ws_server::runtime_builder().build()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let state = PeerMap::new(Mutex::new(HashMap::new()));
    let listener = TcpListener::from_std(benches::listen(
        "The tokio-tungstenite broadcast server, after its examples/server.rs (any path).",
        "127.0.0.1:9004",
    )?)?;
    loop {
        let (stream, addr) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle_connection(state.clone(), stream, addr));
    }
}
