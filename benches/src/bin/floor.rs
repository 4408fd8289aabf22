//! The floor: about the least CPU a WebSocket echo can cost per message on this kernel, to
//! measure every server against (`floor --addr 127.0.0.1:PORT`, any path; prints `listening
//! on ADDR`).
//!
//! One thread on raw edge-triggered epoll (registered as mio, and so tokio, registers a
//! socket), no async runtime, no allocation per message, one receive buffer for all
//! connections, and each echo answered in place: the payload is unmasked where it was
//! received, the answer's header written over the mask key before it, and the answers of a
//! receive go out in one `sendmsg` straight from that buffer (`benches::floor`). No checks
//! beyond the framing (no UTF-8 validation, no fragmented messages, no control frames but
//! Close and Ping).
//!
//! Not a server to run: it answers `wsload`'s echo load and little else. `compare.sh` runs it
//! beside the real servers, so the share of a server's CPU that is the kernel's loopback TCP
//! path (which no server avoids) is measured in the same run rather than claimed. Bad input
//! closes the connection; memory is bounded per connection (an incomplete frame of at most
//! `BUF` bytes, at most `MAX_UNSENT` bytes of answers waiting for a peer that does not read).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use benches::floor::{End, answer_frames, answer_handshake, set_nodelay};

/// The receive buffer, and so the largest frame taken (with its header).
const BUF: usize = 64 * 1024;
/// Answers waiting for a peer that does not read: past this the connection is closed.
const MAX_UNSENT: usize = 1024 * 1024;
/// Answers per `sendmsg` (the kernel takes up to 1024 pieces).
const MAX_PIECES: usize = 1024;
/// The epoll data of the listening socket.
const LISTENER: u64 = u64::MAX;

/// What a connection keeps between receives; both vectors are empty and unallocated while the
/// peer keeps up.
#[derive(Default)]
struct Conn {
    upgraded: bool,
    /// The start of a frame whose end has not arrived.
    partial: Vec<u8>,
    /// Answers the socket did not take.
    unsent: Vec<u8>,
}

/// The buffer every connection receives into, and where its answers are.
struct Shared {
    buf: Box<[u8]>,
    /// Answers in `buf`, as (start, end), in order.
    pieces: Vec<(usize, usize)>,
    /// The `sendmsg` vector for them (kept to reuse its allocation).
    iov: Vec<libc::iovec>,
}

/// Owns a descriptor a system call returned, or the error it reported.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned open by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends the pieces of `shared` (or queues what the socket does not take); `Err` when the
/// queue is over its bound or the socket failed.
fn send_pieces(fd: RawFd, conn: &mut Conn, shared: &mut Shared) -> Result<(), End> {
    if shared.pieces.is_empty() {
        return Ok(());
    }
    let mut sent = 0;
    if conn.unsent.is_empty() {
        let pieces = &shared.pieces[..shared.pieces.len().min(MAX_PIECES)];
        let buf = shared.buf.as_mut_ptr();
        shared.iov.clear();
        shared.iov.extend(pieces.iter().map(|&(start, end)| libc::iovec {
            // SAFETY: `start` is inside `buf` (a piece is a range of it).
            iov_base: unsafe { buf.add(start) }.cast(),
            iov_len: end - start,
        }));
        let iov = &mut shared.iov;
        // SAFETY: every iovec points into `shared.buf`, which outlives the call; `msg` names
        // no address or control data.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
        };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
            return Err(End);
        }
        sent = n.max(0) as usize;
    }
    // What the socket did not take waits in `unsent`, for the next writable edge.
    for &(start, end) in &shared.pieces {
        let len = end - start;
        if sent >= len {
            sent -= len;
            continue;
        }
        conn.unsent.extend_from_slice(&shared.buf[start + sent..end]);
        sent = 0;
    }
    shared.pieces.clear();
    if conn.unsent.len() > MAX_UNSENT { Err(End) } else { flush(fd, conn) }
}

/// Writes what `unsent` holds, as far as the socket takes it.
fn flush(fd: RawFd, conn: &mut Conn) -> Result<(), End> {
    if conn.unsent.is_empty() {
        return Ok(());
    }
    let mut done = 0;
    while done < conn.unsent.len() {
        let rest = &conn.unsent[done..];
        // SAFETY: sends from a live buffer of `rest.len()` bytes.
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                break;
            }
            return Err(End);
        }
        done += n as usize;
    }
    conn.unsent.drain(..done);
    Ok(())
}

/// Receives until a short read and answers everything whole; `Err` ends the connection.
fn serve(fd: RawFd, conn: &mut Conn, shared: &mut Shared) -> Result<(), End> {
    let mut filled = conn.partial.len();
    shared.buf[..filled].copy_from_slice(&conn.partial);
    conn.partial.clear();
    loop {
        let spare = BUF - filled;
        // SAFETY: receives into the spare part of the shared buffer.
        let got = unsafe { libc::recv(fd, shared.buf[filled..].as_mut_ptr().cast(), spare, 0) };
        if got == 0 {
            return Err(End);
        }
        if got < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                break;
            }
            return Err(End);
        }
        filled += got as usize;
        let mut pos = 0;
        if !conn.upgraded {
            // The opening handshake, checked and answered by ws-proto as our servers do.
            pos = match answer_handshake(&shared.buf[..filled], &mut conn.unsent)? {
                Some(head) => head,
                None if filled < BUF => continue,
                None => return Err(End),
            };
            conn.upgraded = true;
            flush(fd, conn)?;
        }
        let (rest, result) = answer_frames(&mut shared.buf[..filled], pos, BUF, &mut shared.pieces);
        let sent = send_pieces(fd, conn, shared);
        result.and(sent)?;
        shared.buf.copy_within(rest..filled, 0);
        filled -= rest;
        if (got as usize) < spare {
            break; // a short read: the socket is drained, the next edge says more
        }
    }
    conn.partial.extend_from_slice(&shared.buf[..filled]);
    Ok(())
}

fn run(listener: TcpListener) -> io::Result<()> {
    // SAFETY: creates a descriptor that `owned` takes.
    let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let add = |fd: RawFd, events: libc::c_int, data: u64| {
        let mut event = libc::epoll_event { events: events as u32, u64: data };
        // SAFETY: `event` is live for the call; both descriptors are open.
        if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    add(listener.as_raw_fd(), libc::EPOLLIN, LISTENER)?;
    // Connections by descriptor number (the socket closes when its entry is dropped).
    let mut conns: Vec<Option<(OwnedFd, Conn)>> = Vec::new();
    let mut shared = Shared {
        buf: vec![0; BUF].into_boxed_slice(),
        pieces: Vec::with_capacity(MAX_PIECES),
        iov: Vec::with_capacity(MAX_PIECES),
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        // SAFETY: `events` has room for the `events.len()` events asked for.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as _, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events[..n as usize] {
            let (ready, data) = (event.events, event.u64);
            if data == LISTENER {
                // SAFETY: accepts on the listening socket, which is open.
                while let Ok(fd) = owned(unsafe {
                    libc::accept4(
                        listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    )
                }) {
                    set_nodelay(fd.as_raw_fd());
                    let slot = fd.as_raw_fd() as usize;
                    let interest = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
                    if add(fd.as_raw_fd(), interest, slot as u64).is_ok() {
                        if conns.len() <= slot {
                            conns.resize_with(slot + 1, || None);
                        }
                        conns[slot] = Some((fd, Conn::default()));
                    }
                }
                continue;
            }
            let slot = data as usize;
            let Some((fd, conn)) = conns.get_mut(slot).and_then(Option::as_mut) else { continue };
            let fd = fd.as_raw_fd();
            let mut result = flush(fd, conn);
            if result.is_ok()
                && ready & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
            {
                result = serve(fd, conn, &mut shared);
                shared.pieces.clear();
            }
            if result.is_err() {
                conns[slot] = None; // closes the socket (and so its epoll registration)
            }
        }
    }
}

fn main() -> io::Result<()> {
    run(benches::listen(
        "The floor: a bare epoll echo server, the least CPU an echo costs (any path).",
        "127.0.0.1:9007",
    )?)
}
