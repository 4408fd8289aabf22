//! The byte stream under a socket when the program does not want to be generic over it: a
//! plain TCP stream on its direct path, or any other stream (TLS, a hyper upgrade, a Unix
//! socket) behind one box.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What [`Transport::Boxed`] holds: any tokio byte stream that can move between threads.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A byte stream of any kind, so that `WebSocket<Transport>` is one type whatever carries
/// it: what [`connect`](crate::connect) returns for `ws://` and `wss://` alike, and what
/// ws-server's sockets run on.
///
/// Plain TCP keeps its direct path: a read or write is one predictable branch and then
/// tokio's own call, with no box and no virtual call (measured on the echo path: the same CPU
/// per message as `WebSocket<TcpStream>`). Everything else costs one virtual call per read or
/// write system call, which is nothing next to TLS's encryption or hyper's machinery.
pub enum Transport {
    /// A plain TCP connection.
    Tcp(TcpStream),
    /// Any other stream: TLS, an HTTP upgrade from hyper, a Unix socket, a test duplex.
    Boxed(Box<dyn Io>),
}

impl Transport {
    /// Wraps any stream (use [`Transport::Tcp`] for a `TcpStream`: it keeps the direct path).
    pub fn boxed(stream: impl Io) -> Transport {
        Transport::Boxed(Box::new(stream))
    }

    /// The TCP stream, when it is one.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Tcp(tcp) => Some(tcp),
            Transport::Boxed(_) => None,
        }
    }
}

impl From<TcpStream> for Transport {
    fn from(tcp: TcpStream) -> Transport {
        Transport::Tcp(tcp)
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(tcp) => f.debug_tuple("Tcp").field(tcp).finish(),
            Transport::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.get_mut() {
            Transport::Tcp($s) => {
                let $s = Pin::new($s);
                $call
            }
            Transport::Boxed($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl AsyncRead for Transport {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Boxed(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
