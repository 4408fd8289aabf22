//! The seeds' asynchronous example, class `MyApp.Detached` at `/csp/user/MyApp.Detached.cls`:
//! `on_pre_server` keeps the WebSocketID and makes the socket shared, `server` returns at
//! once, and another task later opens the socket by its id, writes, reads the reply and ends
//! it.

use std::time::Duration;

use tokio::sync::mpsc;
use ws_server::{Connection, Error, PreServer, Registry, Reject, WebSocketId, WebSocketServer, async_trait};

/// The detached class: hands its socket's id to the worker.
#[derive(Debug, Clone)]
pub struct Detached {
    /// Where the ids go (the worker's queue; IRIS would store them in a global).
    pub ids: mpsc::UnboundedSender<WebSocketId>,
    id: Option<WebSocketId>,
}

impl Detached {
    /// A class instance reporting to `ids`.
    pub fn new(ids: mpsc::UnboundedSender<WebSocketId>) -> Self {
        Detached { ids, id: None }
    }
}

#[async_trait]
impl WebSocketServer for Detached {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        self.id = Some(pre.web_socket_id());
        pre.set_shared_connection(true);
        Ok(())
    }

    async fn server(&mut self, _ws: &mut Connection) -> Result<(), Error> {
        // The socket is registered now: let the worker have it, and return at once.
        if let Some(id) = self.id {
            let _ = self.ids.send(id);
        }
        Ok(())
    }
}

/// The other task: for each id, after `delay`, opens the socket, greets the client, waits
/// (up to `reply_timeout`) for one reply, answers it, and ends the socket.
pub async fn worker(
    registry: Registry,
    mut ids: mpsc::UnboundedReceiver<WebSocketId>,
    delay: Duration,
    reply_timeout: Duration,
) {
    while let Some(id) = ids.recv().await {
        let registry = registry.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = converse(&registry, id, reply_timeout).await {
                tracing::info!(web_socket_id = %id, error = %e, "detached conversation ended");
            }
        });
    }
}

async fn converse(registry: &Registry, id: WebSocketId, reply_timeout: Duration) -> Result<(), Error> {
    let socket = registry.open_server(&id).await.map_err(|e| Error::InvalidInput(e.to_string()))?;
    socket.write(&format!("Hello from a detached task, socket {id}. Say something:")).await?;
    let reply = socket.read(ws_server::DEFAULT_READ_LEN, reply_timeout).await;
    match reply {
        Ok(msg) => socket.write(&format!("You said: {}", String::from_utf8_lossy(msg.as_bytes()))).await?,
        Err(Error::Timeout) => socket.write("No reply in time.").await?,
        Err(e) => return Err(e),
    }
    socket.end_server().await
}
