//! The seeds' chat, class `Chat.Server` at `/csp/user/Chat.Server.cls`, page at `/`.
//!
//! Wire format (JSON text messages):
//! - client to server: `{"Message": "text"}` is a chat line; `{"User": "name"}` sets or
//!   changes the sender's name (the page sends it for `/nick NAME` or `alias NAME`).
//! - server to client: `{"Type": "Status", "WSID": id}` on connect; `{"Type": "userlist",
//!   "Users": [{"Name": ..}, ..]}` to the room on every join, rename and leave;
//!   `{"Type": "Chat", "Message", "User", "Room", "Sent": "YYYY-MM-DD HH:MM:SS", "WSID"}` to
//!   every socket of the room, the sender included.
//!
//! Rooms come from `?room=` (default `default`) and are the registry's rooms; names are the
//! sockets' registry labels. So one `publish` encodes a message once for the whole room, and
//! with a cluster attached (ws-cluster) rooms and the user list span every node with no
//! change here.

use serde_json::{Value, json};
use ws_server::{Connection, Error, PostServer, PreServer, Registry, Reject, WebSocketServer, async_trait};

/// The chat page (plain HTML and JavaScript).
pub const PAGE: &str = include_str!("../static/chat.html");

/// Longest accepted name, in characters.
const MAX_NAME: usize = 40;

/// The chat class: one instance per socket.
#[derive(Debug)]
pub struct ChatServer {
    room: String,
}

impl Default for ChatServer {
    fn default() -> Self {
        ChatServer { room: "default".into() }
    }
}

/// Sends the room's user list (on every node) to everyone in the room.
async fn publish_userlist(registry: &Registry, room: &str) {
    let users: Vec<Value> =
        registry.room_members(room).await.into_iter().map(|m| json!({ "Name": m.label })).collect();
    registry.publish(room, &json!({ "Type": "userlist", "Users": users }).to_string());
}

#[async_trait]
impl WebSocketServer for ChatServer {
    async fn on_pre_server(&mut self, pre: &mut PreServer) -> Result<(), Reject> {
        if let Some(room) = pre.query("room").map(str::trim).filter(|r| !r.is_empty()) {
            self.room = room.chars().take(64).collect();
        }
        Ok(())
    }

    async fn server(&mut self, ws: &mut Connection) -> Result<(), Error> {
        let id = ws.web_socket_id();
        let registry = ws.registry().clone();
        registry.set_label(&id, &format!("Guest-{}", &id.to_string()[..6])).await;
        ws.write(&json!({ "Type": "Status", "WSID": id.to_string() }).to_string()).await?;
        registry.subscribe(&id, &self.room).await;
        publish_userlist(&registry, &self.room).await;
        loop {
            // Whole messages: a chat line is JSON, and a piece of one would not parse.
            let msg = match ws.read_message().await {
                Ok(msg) => msg,
                Err(Error::Timeout) => continue,
                Err(e) => return Err(e), // a normal close is not reported as an error
            };
            let Some(request) = msg.as_text().and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
                let hint =
                    json!({ "Type": "Error", "Message": "send JSON: {\"Message\": ..} or {\"User\": ..}" });
                ws.write(&hint.to_string()).await?;
                continue;
            };
            if let Some(name) = request.get("User").and_then(Value::as_str) {
                let name: String = name.trim().chars().take(MAX_NAME).collect();
                if !name.is_empty() {
                    registry.set_label(&id, &name).await;
                    publish_userlist(&registry, &self.room).await;
                }
            } else if let Some(text) = request.get("Message").and_then(Value::as_str) {
                let line = json!({
                    "Type": "Chat",
                    "Message": text,
                    "User": registry.label(&id).unwrap_or_default(),
                    "Room": self.room,
                    "Sent": crate::now_string(),
                    "WSID": id.to_string(),
                });
                registry.publish(&self.room, &line.to_string());
            }
        }
    }

    async fn on_post_server(&mut self, post: &PostServer) {
        // The socket has already left the registry and its room.
        publish_userlist(&post.registry, &self.room).await;
    }
}
