//! `Message`: a message, or the piece of one a `read` returns.

use bytes::Bytes;
use ws_proto::Utf8Bytes;

/// A message, or a piece of one returned by [`WebSocket::read`](crate::WebSocket::read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text (valid UTF-8).
    Text(Utf8Bytes),
    /// Bytes.
    Binary(Bytes),
}

impl Message {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Is the payload empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this text?
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Gives back the payload.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Splits off the first `len` characters (text) or bytes (binary); the rest, if any, is
    /// returned second. A character is never split. This is how `read(len, ..)` cuts a message.
    pub fn split_first(self, len: usize) -> (Message, Option<Message>) {
        match self {
            Message::Text(t) => {
                let cut = if len >= t.len() { None } else { t.char_indices().nth(len).map(|(i, _)| i) };
                match cut {
                    Some(i) => (Message::Text(t.slice(0..i)), Some(Message::Text(t.slice(i..t.len())))),
                    None => (Message::Text(t), None),
                }
            }
            Message::Binary(mut b) if len < b.len() => {
                let head = b.split_to(len);
                (Message::Binary(head), Some(Message::Binary(b)))
            }
            m => (m, None),
        }
    }
}
