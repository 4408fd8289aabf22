//! What went wrong, in the terms a `Server()` method acts on.

use std::fmt;
use std::io;

use ws_proto::{CloseCode, HandshakeError, ProtocolError};

/// The error of a WebSocket operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Nothing arrived within a `read`'s timeout. The socket stays open and nothing was lost.
    Timeout,
    /// The opening handshake (connecting, or a client's request to [`accept`](crate::accept))
    /// did not complete within `handshake_timeout`; there is no socket.
    HandshakeTimeout,
    /// The connection is closed: the peer closed it (its code and reason), this end closed
    /// it, or it died (code 1006, "abnormal closure", and an empty reason).
    Closed {
        /// The close code: the peer's, 1005 if its Close had none, 1006 if the connection
        /// ended without a Close frame.
        code: CloseCode,
        /// The peer's reason (UTF-8, possibly empty).
        reason: String,
    },
    /// The peer broke the protocol; this Close code was sent to it and the connection is
    /// closed.
    Protocol {
        /// What the peer did wrong.
        error: ProtocolError,
        /// The close code sent in answer (1002, 1007 or 1009).
        code: CloseCode,
    },
    /// The opening handshake failed (on a server: the HTTP error was already answered).
    Handshake(HandshakeError),
    /// A bad argument: a URL this client cannot open, a control payload over 125 bytes, a
    /// close code that may not be sent.
    InvalidInput(String),
    /// The transport failed.
    Io(io::Error),
}

impl Error {
    /// The close code the connection ended with, for errors that end it.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Closed { code, .. } | Error::Protocol { code, .. } => Some(*code),
            Error::Io(_) => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }

    /// Is this the read timeout (after which the socket is still usable)?
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// Is the connection over?
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. } | Error::Protocol { .. } | Error::Io(_))
    }

    /// Did the connection end with a normal closing handshake (1000, 1001, or a Close
    /// without a status), from either side? That is how a conversation ends, not a failure.
    pub fn is_normal_close(&self) -> bool {
        matches!(
            self,
            Error::Closed { code: CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode::NO_STATUS, .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out"),
            Error::HandshakeTimeout => f.write_str("the opening handshake timed out"),
            Error::Closed { code, reason } if reason.is_empty() => write!(f, "closed ({code})"),
            Error::Closed { code, reason } => write!(f, "closed ({code}: {reason})"),
            Error::Protocol { error, .. } => write!(f, "protocol error: {error}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::InvalidInput(what) => write!(f, "invalid input: {what}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol { error, .. } => Some(error),
            Error::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}
