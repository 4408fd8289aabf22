//! Calls on a shared socket held by another node (`read`, `write`, `end_server` through
//! `open_server`): a request on the holder's inbox, answered on the caller's. A request this
//! node cannot read is answered `malformed` when it still names its sender; a reply it cannot
//! read fails the waiting call at once; anything else unreadable is logged and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;
use ws_server::{CloseCode, Error, Message, OpenError, RemoteSocket, SharedHandle, WebSocketId};

use crate::node::Node;
use crate::wire::{self, Answer, Envelope, Header, Kind, Malformed, Op};

/// A reply as it arrived (answer and payload), or why it could not be read.
type Reply = Result<(Answer, Bytes), Error>;

/// This node's requests waiting for their replies.
pub(crate) struct Pending {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next: AtomicU64,
}

impl Pending {
    pub(crate) fn new() -> Self {
        Pending { waiting: Mutex::default(), next: AtomicU64::new(1) }
    }

    fn register(&self) -> (u64, oneshot::Receiver<Reply>) {
        let req = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(req, tx);
        (req, rx)
    }

    /// Hands `reply` to request `req`, if it still waits.
    fn resolve(&self, req: u64, reply: Reply) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&req);
        if let Some(waiting) = waiting {
            let _ = waiting.send(reply);
        }
    }

    fn forget(&self, req: u64) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&req);
    }
}

fn malformed_reply(why: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("malformed reply from another node: {why}"))
}

impl Node {
    /// A message on this node's inbox, as [`wire::decode`] read it.
    pub(crate) fn on_inbox(
        self: Arc<Self>,
        channel: &str,
        raw: &[u8],
        decoded: Result<(Header, &[u8]), Malformed>,
    ) {
        match decoded {
            Ok((Header::Request { req, from, id, op }, body)) => {
                let body = Bytes::copy_from_slice(body);
                tokio::spawn(async move { self.serve(req, &from, id, op, body).await });
            }
            Ok((Header::Reply { req, answer }, body)) => {
                self.pending.resolve(req, Ok((answer, Bytes::copy_from_slice(body))));
            }
            Ok((header, _)) => self.drop_message(channel, format_args!("a {} message", header.kind())),
            Err(e) => {
                match wire::envelope(raw) {
                    Some(Envelope::Request { req, from }) => {
                        self.reply(&from, req, Answer::Malformed { reason: e.to_string() }, &[]);
                    }
                    Some(Envelope::Reply { req }) => self.pending.resolve(req, Err(malformed_reply(&e))),
                    None => {}
                }
                self.drop_message(channel, e);
            }
        }
    }

    /// Runs a request from node `from` on a local shared socket and answers it.
    async fn serve(self: Arc<Self>, req: u64, from: &str, id: WebSocketId, op: Op, body: Bytes) {
        let handle = match self.registry.open_local(&id) {
            Ok(h) => h,
            Err(OpenError::NotShared) => return self.reply(from, req, Answer::NotShared, &[]),
            Err(_) => return self.reply(from, req, Answer::NotFound, &[]),
        };
        let done = |result: Result<(), Error>| result.map_or_else(|e| Answer::failure(&e), |()| Answer::Done);
        let answer = match op {
            Op::Write { kind } => match wire::message(kind, &body) {
                Ok(msg) => done(handle.write_message(msg).await),
                Err(_) => Answer::Closed { code: CloseCode::INVALID_PAYLOAD.0, reason: String::new() },
            },
            Op::Read { len, timeout_ms } => match handle.read(len, Duration::from_millis(timeout_ms)).await {
                Ok(msg) => {
                    let (kind, bytes) = wire::message_parts(&msg);
                    return self.reply(from, req, Answer::Message { kind }, bytes);
                }
                Err(e) => Answer::failure(&e),
            },
            Op::Close { code, reason } => done(handle.close(CloseCode(code), &reason).await),
        };
        self.reply(from, req, answer, &[]);
    }

    fn reply(&self, to: &str, req: u64, answer: Answer, body: &[u8]) {
        self.enqueue(self.inbox_channel(to), wire::encode(&Header::Reply { req, answer }, body));
    }

    /// Sends `op` on the socket `id` to `node` and waits (at most `wait` plus `reply_grace`)
    /// for the answer: the kind of the message read, if one was, and the payload.
    async fn request(
        &self,
        node: &str,
        id: &WebSocketId,
        op: Op,
        body: &[u8],
        wait: Duration,
    ) -> Result<(Option<Kind>, Bytes), Error> {
        let started = std::time::Instant::now();
        let (req, reply) = self.pending.register();
        let header = Header::Request { req, from: self.id.clone(), id: *id, op };
        self.enqueue(self.inbox_channel(node), wire::encode(&header, body));
        let reply = tokio::time::timeout(wait.saturating_add(self.config.reply_grace), reply).await;
        self.pending.forget(req);
        self.registry.cluster_stats().call_finished(started.elapsed());
        match reply {
            Ok(Ok(reply)) => reply.and_then(|(answer, body)| Ok((answer.outcome()?, body))),
            _ => Err(Error::Closed { code: CloseCode::ABNORMAL, reason: "node unreachable".into() }),
        }
    }

    /// A handle to the shared socket `id` on a live node other than this one.
    pub(crate) async fn open_remote_socket(&self, id: &WebSocketId) -> Result<SharedHandle, OpenError> {
        let location = self.locate(id).await.ok_or(OpenError::NotFound)?;
        if location.node == self.id {
            return Err(OpenError::NotFound); // ours, but no longer in the local registry
        }
        match self.alive_nodes(std::slice::from_ref(&location.node)).await {
            Some(alive) if alive == [true] => {}
            _ => return Err(OpenError::NotFound), // its node is dead (or Redis is down)
        }
        if !location.shared {
            return Err(OpenError::NotShared);
        }
        // The `Cluster` hooks only get `&self`; the handle needs the node itself.
        let node = self.me.upgrade().ok_or(OpenError::NotFound)?;
        Ok(SharedHandle::remote(*id, Arc::new(RemoteShared { node, owner: location.node, id: *id })))
    }
}

/// A shared socket on another node.
struct RemoteShared {
    node: Arc<Node>,
    owner: String,
    id: WebSocketId,
}

#[async_trait]
impl RemoteSocket for RemoteShared {
    async fn read(&self, len: usize, timeout: Duration) -> Result<Message, Error> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let op = Op::Read { len, timeout_ms };
        let (kind, body) = self.node.request(&self.owner, &self.id, op, &[], timeout).await?;
        let kind = kind.ok_or_else(|| malformed_reply("no message"))?;
        wire::message(kind, &body).map_err(malformed_reply)
    }

    async fn write_message(&self, msg: Message) -> Result<(), Error> {
        let (kind, bytes) = wire::message_parts(&msg);
        let wait = self.node.config.command_timeout;
        self.node.request(&self.owner, &self.id, Op::Write { kind }, bytes, wait).await.map(|_| ())
    }

    async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let op = Op::Close { code: code.0, reason: reason.to_string() };
        // Closing waits for the closing handshake on the other side (bounded there).
        let wait = Duration::from_secs(6);
        match self.node.request(&self.owner, &self.id, op, &[], wait).await {
            Ok(_) | Err(Error::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
