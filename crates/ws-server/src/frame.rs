//! A frame pushed to many sockets (broadcast, room publish): encoded once and, for the
//! recipients that agreed to permessage-deflate, compressed once.

use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::MessageKind;
use ws_session::{Error, WebSocket};

/// The window a shared compressed frame is made with (every client that did not ask for a
/// smaller one accepts it).
const SHARED_WINDOW_BITS: u8 = 15;

/// An encoded frame shared by its recipients, with its compressed form made the first time
/// a recipient that agreed to permessage-deflate takes it (in that socket's task), then shared
/// by the others, as the plain bytes are. Compressed with no context takeover, so any client
/// that agreed to a server window of 15 bits inflates it whatever else it agreed to.
#[derive(Clone)]
pub(crate) struct PushedFrame(Arc<Inner>);

struct Inner {
    plain: Bytes,
    /// For one whole unmasked text or binary frame: its kind and where its payload is.
    message: Option<(MessageKind, Range<usize>)>,
    compressed: OnceLock<Bytes>,
}

impl PushedFrame {
    /// Wraps encoded frames (from [`ws_proto::encode_server_frame`]). Only a single whole
    /// text or binary frame is ever compressed; anything else goes as it is.
    pub(crate) fn new(plain: Bytes) -> PushedFrame {
        let message = single_message(&plain);
        PushedFrame(Arc::new(Inner { plain, message, compressed: OnceLock::new() }))
    }

    fn message(&self) -> Option<(MessageKind, &[u8])> {
        let (kind, range) = self.0.message.as_ref()?;
        Some((*kind, &self.0.plain[range.clone()]))
    }
}

impl Deref for PushedFrame {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.0.plain
    }
}

impl From<Bytes> for PushedFrame {
    fn from(plain: Bytes) -> PushedFrame {
        PushedFrame::new(plain)
    }
}

/// The kind and payload range of `frame` when it is exactly one final, unmasked,
/// uncompressed text or binary frame.
fn single_message(frame: &[u8]) -> Option<(MessageKind, Range<usize>)> {
    let (&b0, &b1) = (frame.first()?, frame.get(1)?);
    let kind = match b0 {
        0x81 => MessageKind::Text,
        0x82 => MessageKind::Binary,
        _ => return None, // not final, RSV bits, or another opcode
    };
    if b1 & 0x80 != 0 {
        return None; // masked: not a server's frame
    }
    let (start, len): (usize, usize) = match b1 & 0x7f {
        126 => (4, u16::from_be_bytes(frame.get(2..4)?.try_into().ok()?) as usize),
        127 => (10, usize::try_from(u64::from_be_bytes(frame.get(2..10)?.try_into().ok()?)).ok()?),
        n => (2, n as usize),
    };
    (frame.len() == start.checked_add(len)?).then_some((kind, start..start + len))
}

/// Queues a pushed frame on `ws` the way its permessage-deflate agreement wants it: the
/// shared compressed frame when it agreed to no server context takeover (the default), a
/// compression of its own when it keeps a context (or asked for a smaller window), the plain
/// frame when it agreed to nothing or the message is under `min_size`.
pub(crate) fn queue_frame<S>(ws: &mut WebSocket<S>, frame: &PushedFrame) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (Some(agreed), Some((kind, payload))) = (ws.deflate(), frame.message()) else {
        return ws.queue_encoded(frame);
    };
    if !ws.compresses(payload.len()) {
        return ws.queue_encoded(frame);
    }
    if !agreed.server_no_context_takeover || !agreed.accepts_shared(SHARED_WINDOW_BITS) {
        return ws.queue_payload(kind, payload);
    }
    let level = ws.config().deflate.as_ref().map_or(6, |d| d.level);
    let compressed = frame.0.compressed.get_or_init(|| {
        #[cfg(test)]
        tests::COMPRESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ws_proto::encode_compressed_frame(kind, payload, SHARED_WINDOW_BITS, level)
    });
    if ws.queue_compressed(compressed, SHARED_WINDOW_BITS)? { Ok(()) } else { ws.queue_encoded(frame) }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ws_proto::{DeflateConfig, Role};
    use ws_session::Config;

    use super::*;

    /// How many shared compressed frames were made (this module's tests only).
    pub(super) static COMPRESSIONS: AtomicUsize = AtomicUsize::new(0);

    /// A server socket and its client over an in-memory pipe, with `offer` agreed (or none).
    fn pair(offer: Option<&str>) -> (WebSocket<tokio::io::DuplexStream>, WebSocket<tokio::io::DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let policy =
            DeflateConfig::default().server_no_context_takeover(true).client_no_context_takeover(true);
        let config = Config::default().deflate(Some(policy.clone()));
        let mut server = WebSocket::from_upgraded(a, Role::Server, config.clone(), Default::default(), None);
        let mut client = WebSocket::from_upgraded(b, Role::Client, config, Default::default(), None);
        if let Some(offer) = offer {
            let agreed =
                ws_proto::negotiate_deflate(&policy, [offer.as_bytes()]).expect("an acceptable offer");
            server.set_deflate(agreed.params);
            client.set_deflate(agreed.params);
        }
        (server, client)
    }

    #[tokio::test]
    async fn a_broadcast_is_compressed_once_for_every_socket_that_agreed() {
        let text = r#"{"Type":"Chat","Room":"lobby","Author":"alice","Message":"hello hello hello hello"}"#
            .repeat(8);
        let frame = PushedFrame::new(ws_proto::encode_server_frame(MessageKind::Text, text.as_bytes()));
        let before = COMPRESSIONS.load(Ordering::Relaxed);
        let mut pairs = vec![
            pair(Some("permessage-deflate")),
            pair(Some("permessage-deflate; client_max_window_bits")),
            pair(Some("permessage-deflate; server_no_context_takeover")),
            pair(None),
            pair(Some("permessage-deflate; server_max_window_bits=10")), // its own compression
        ];
        for (i, (server, _)) in pairs.iter_mut().enumerate() {
            queue_frame(server, &frame).unwrap();
            let queued = server.buffered_amount();
            if i == 3 {
                assert_eq!(queued, frame.len(), "the socket without deflate got the plain frame");
            } else {
                assert!(queued < frame.len() / 4, "socket {i} queued {queued} of {} bytes", frame.len());
            }
            server.send_queued().await.unwrap();
        }
        assert_eq!(COMPRESSIONS.load(Ordering::Relaxed) - before, 1, "compressed more than once");
        for (_, client) in &mut pairs {
            let got =
                tokio::time::timeout(Duration::from_secs(5), client.read_message()).await.unwrap().unwrap();
            assert_eq!(got.as_text(), Some(text.as_str()));
        }
    }

    #[test]
    fn only_single_whole_messages_are_compressible() {
        let text = ws_proto::encode_server_frame(MessageKind::Text, b"hello");
        assert_eq!(single_message(&text), Some((MessageKind::Text, 2..7)));
        let big = ws_proto::encode_server_frame(MessageKind::Binary, &[7u8; 70_000]);
        assert_eq!(single_message(&big), Some((MessageKind::Binary, 10..70_010)));
        let medium = ws_proto::encode_server_frame(MessageKind::Text, &[b'a'; 300]);
        assert_eq!(single_message(&medium), Some((MessageKind::Text, 4..304)));
        let mut two = text.to_vec();
        two.extend_from_slice(&text);
        assert_eq!(single_message(&two), None, "two frames");
        assert_eq!(single_message(&text[..4]), None, "cut short");
        assert_eq!(single_message(&[0x01, 0x01, b'a']), None, "not final");
        assert_eq!(single_message(&[0x89, 0x00]), None, "a ping");
        assert_eq!(single_message(&[0xc1, 0x01, b'a']), None, "already compressed");
    }
}
