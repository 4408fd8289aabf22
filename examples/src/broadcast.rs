//! A broadcast class for the load benchmark, `Bench.Broadcast` at
//! `/csp/user/Bench.Broadcast.cls`: every socket joins room `bench` (or `?room=`), and every
//! message a socket sends goes to the whole room, encoded once.

use ws_server::{Connection, Error, PreServer, Reject, WebSocketServer, async_trait};

/// The broadcast class.
#[derive(Debug, Default)]
pub struct Broadcast {
    room: Option<String>,
}

#[async_trait]
impl WebSocketServer for Broadcast {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        self.room = pre.query("room").map(str::to_string);
        Ok(())
    }

    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        let room = self.room.take().unwrap_or_else(|| "bench".into());
        let registry = ws.registry().clone();
        registry.subscribe(&ws.web_socket_id(), &room).await;
        loop {
            match ws.read(0, ws_session::DEFAULT_READ_TIMEOUT).await {
                Ok(msg) => match msg.as_text() {
                    Some(text) => registry.publish(&room, text),
                    None => registry.publish_binary(&room, msg.as_bytes()),
                },
                Err(Error::Timeout) => continue,
                Err(Error::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
        }
    }
}
