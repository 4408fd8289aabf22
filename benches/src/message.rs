//! Messages out of frames (RFC 6455 §5.4 fragmentation, §5.5 control frames): data arrives as
//! start, payload slices and end, whatever the fragmentation; control frames are collected
//! whole (they are at most 125 bytes) and handed out complete.

use std::fmt;

use crate::frame::{CLOSE, CONTINUATION, FrameError, FrameReader, Item, PING, PONG};

/// What [`MessageReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A data message begins, with this opcode (text, binary, or a reserved one).
    Start(u8),
    /// Payload bytes of the current data message, in order.
    Data(&'a [u8]),
    /// The current data message is complete.
    End,
    /// A ping, with its payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame, with its status code if it had one.
    Close(Option<u16>),
}

/// A violation of §5 that ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The frame itself is wrong.
    Frame(FrameError),
    /// A control frame longer than 125 bytes or fragmented (§5.5).
    Control,
    /// A reserved control opcode (0xB–0xF).
    Opcode(u8),
    /// A continuation frame with no message open, or a new message inside one (§5.4).
    Fragmentation,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(FrameError::Masked) => f.write_str("masked frame from the server"),
            ProtocolError::Frame(FrameError::Reserved) => f.write_str("RSV bit set"),
            ProtocolError::Control => f.write_str("control frame fragmented or over 125 bytes"),
            ProtocolError::Opcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::Fragmentation => f.write_str("bad fragmentation"),
        }
    }
}

/// Turns the server's byte stream into [`Event`]s.
#[derive(Debug, Default)]
pub struct MessageReader {
    frames: FrameReader,
    in_message: bool,
    /// FIN of the data frame being read.
    last_fragment: bool,
    /// Opcode of the control frame being collected.
    control: Option<u8>,
    control_payload: Vec<u8>,
}

impl MessageReader {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next event in `input`, and how many bytes of it were consumed; `Ok((n, None))` when
    /// the input is used up. Call again with the rest until it returns `None`.
    pub fn next<'a>(&'a mut self, input: &'a [u8]) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        let mut used = 0;
        loop {
            let (n, item) = self.frames.next(&input[used..]).map_err(ProtocolError::Frame)?;
            used += n;
            match item {
                None => return Ok((used, None)),
                Some(Item::Header(h)) if h.opcode >= 0x8 => {
                    if !matches!(h.opcode, CLOSE | PING | PONG) {
                        return Err(ProtocolError::Opcode(h.opcode));
                    }
                    if !h.fin || h.len > 125 {
                        return Err(ProtocolError::Control);
                    }
                    self.control = Some(h.opcode);
                    self.control_payload.clear();
                }
                Some(Item::Header(h)) if h.opcode == CONTINUATION => {
                    if !self.in_message {
                        return Err(ProtocolError::Fragmentation);
                    }
                    self.last_fragment = h.fin;
                }
                Some(Item::Header(h)) => {
                    if self.in_message {
                        return Err(ProtocolError::Fragmentation);
                    }
                    self.in_message = true;
                    self.last_fragment = h.fin;
                    return Ok((used, Some(Event::Start(h.opcode))));
                }
                Some(Item::Payload(p)) if self.control.is_some() => self.control_payload.extend_from_slice(p),
                Some(Item::Payload(p)) => return Ok((used, Some(Event::Data(p)))),
                Some(Item::End) => match self.control.take() {
                    Some(PING) => return Ok((used, Some(Event::Ping(&self.control_payload)))),
                    Some(PONG) => return Ok((used, Some(Event::Pong))),
                    Some(_) => {
                        let p = &self.control_payload;
                        let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                        return Ok((used, Some(Event::Close(code))));
                    }
                    None if self.last_fragment => {
                        self.in_message = false;
                        return Ok((used, Some(Event::End)));
                    }
                    None => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::TEXT;

    fn events(wire: &[u8]) -> Vec<String> {
        let mut reader = MessageReader::new();
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let (n, ev) = reader.next(&wire[pos..]).unwrap();
            pos += n;
            match ev {
                None => break,
                Some(ev) => out.push(format!("{ev:?}")),
            }
        }
        out
    }

    #[test]
    fn fragments_and_interleaved_control_frames() {
        let wire = [
            &[TEXT, 2, b'a', b'b'][..],      // first fragment (FIN clear)
            &[0x80 | PING, 1, b'x'],         // a ping between fragments
            &[0x80 | CONTINUATION, 1, b'c'], // last fragment
            &[0x80 | CLOSE, 2, 0x03, 0xe8],  // close 1000
        ]
        .concat();
        assert_eq!(
            events(&wire),
            ["Start(1)", "Data([97, 98])", "Ping([120])", "Data([99])", "End", "Close(Some(1000))"]
        );
    }

    #[test]
    fn continuation_without_a_message_is_refused() {
        let mut reader = MessageReader::new();
        assert_eq!(reader.next(&[0x80, 0]).unwrap_err(), ProtocolError::Fragmentation);
    }
}
