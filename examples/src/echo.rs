//! The seeds' echo server, class `MyApp.MyWebSocketServer` at
//! `/csp/user/MyApp.MyWebSocketServer.cls`: it reads with a timeout (10 s), answers a timeout
//! with `Server timed-out at <time>`, echoes everything else, and ends the server when the
//! client sends `exit`.

use std::time::Duration;

use ws_server::{Connection, DEFAULT_READ_LEN, Error, WebSocketServer, async_trait};

/// The echo class.
#[derive(Debug, Clone)]
pub struct MyWebSocketServer {
    /// How long `read` waits before the timed-out message (10 s in the seed).
    pub timeout: Duration,
}

impl Default for MyWebSocketServer {
    fn default() -> Self {
        MyWebSocketServer { timeout: Duration::from_secs(10) }
    }
}

#[async_trait]
impl WebSocketServer for MyWebSocketServer {
    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        loop {
            match ws.read(DEFAULT_READ_LEN, self.timeout).await {
                Ok(data) if data.as_text() == Some("exit") => return ws.end_server().await,
                Ok(data) => ws.write_message(&data).await?,
                Err(Error::Timeout) => {
                    ws.write(&format!("Server timed-out at {}", crate::now_string())).await?
                }
                Err(Error::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
