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
//! Rooms come from `?room=` (default `default`) and are the registry's rooms, so one
//! `publish` encodes a message once for the whole room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use ws_server::{
    Connection, Error, PostServer, PreServer, Registry, Reject, WebSocketId, WebSocketServer, async_trait,
};

/// The chat page (plain HTML and JavaScript).
pub const PAGE: &str = include_str!("../static/chat.html");

/// Longest accepted name, in characters.
const MAX_NAME: usize = 40;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    room: String,
    joined: u64,
}

/// Who is online: shared by every chat socket of a server.
#[derive(Debug, Default)]
pub struct ChatState {
    members: Mutex<HashMap<WebSocketId, Member>>,
    joins: std::sync::atomic::AtomicU64,
}

impl ChatState {
    /// The names in `room`, in order of joining.
    pub fn names(&self, room: &str) -> Vec<String> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_room: Vec<&Member> = members.values().filter(|m| m.room == room).collect();
        in_room.sort_by_key(|m| m.joined);
        in_room.into_iter().map(|m| m.name.clone()).collect()
    }

    fn publish_userlist(&self, registry: &Registry, room: &str) {
        let users: Vec<Value> = self.names(room).into_iter().map(|n| json!({ "Name": n })).collect();
        registry.publish(room, &json!({ "Type": "userlist", "Users": users }).to_string());
    }
}

/// The chat class: one instance per socket.
#[derive(Debug)]
pub struct ChatServer {
    state: Arc<ChatState>,
    room: String,
}

impl ChatServer {
    /// An instance sharing `state` with the other sockets.
    pub fn new(state: Arc<ChatState>) -> Self {
        ChatServer { state, room: "default".into() }
    }
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
        let name = format!("Guest-{}", &id.to_string()[..6]);
        let joined = self.state.joins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.state
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Member { name, room: self.room.clone(), joined });
        ws.write(&json!({ "Type": "Status", "WSID": id.to_string() }).to_string()).await?;
        registry.subscribe(&id, &self.room);
        self.state.publish_userlist(&registry, &self.room);
        loop {
            let msg = match ws.read(32656, ws_session::DEFAULT_READ_TIMEOUT).await {
                Ok(msg) => msg,
                Err(Error::Timeout) => continue,
                Err(Error::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let Some(request) = msg.as_text().and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
                ws.write(
                    &json!({ "Type": "Error", "Message": "send JSON: {\"Message\": ..} or {\"User\": ..}" })
                        .to_string(),
                )
                .await?;
                continue;
            };
            if let Some(new_name) = request.get("User").and_then(Value::as_str) {
                let new_name: String = new_name.trim().chars().take(MAX_NAME).collect();
                if !new_name.is_empty() {
                    if let Some(m) = self.state.members.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id)
                    {
                        m.name = new_name;
                    }
                    self.state.publish_userlist(&registry, &self.room);
                }
            } else if let Some(text) = request.get("Message").and_then(Value::as_str) {
                let user = self
                    .state
                    .members
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                let line = json!({
                    "Type": "Chat",
                    "Message": text,
                    "User": user,
                    "Room": self.room,
                    "Sent": crate::now_string(),
                    "WSID": id.to_string(),
                });
                registry.publish(&self.room, &line.to_string());
            }
        }
    }

    async fn on_post_server(&mut self, post: &PostServer) {
        self.state.members.lock().unwrap_or_else(|e| e.into_inner()).remove(&post.web_socket_id);
        self.state.publish_userlist(&post.registry, &self.room);
    }
}
