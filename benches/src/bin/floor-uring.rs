//! The floor on io_uring: `floor`'s echo (benches/src/bin/floor.rs) with the system calls
//! batched by an io_uring instead of made one by one after epoll (`floor-uring --addr
//! 127.0.0.1:PORT`, any path; prints `listening on ADDR`).
//!
//! One thread and one ring (single issuer, task work deferred to the ring's wait). Each
//! connection has one receive in flight at a time, into its own buffer; a receive's answers
//! are written in place there (`benches::floor::answer_frames`), packed together, and sent by
//! one send linked before the next receive, so the kernel starts that receive only once the
//! answers are sent, and one `io_uring_enter` submits the sends and receives of every
//! connection that completed since the last and waits for the next completion.
//!
//! Not a server to run: like `floor` it answers `wsload`'s echo load and little else, to show
//! in the same run what CPU per message a server would reach without epoll's system calls.
//! Memory is bounded per connection (one `BUF`-byte buffer; a peer that does not read holds
//! one send and its buffer).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use benches::floor::{End, answer_frames, answer_handshake, listen_from_args, set_nodelay};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// A connection's buffer, and so the largest frame taken (with its header).
const BUF: usize = 64 * 1024;
/// Submission queue entries; completions get twice as many (two operations per connection at
/// most are in flight, and the accept).
const ENTRIES: u32 = 4096;
/// The accept's user data; a connection's operations carry its descriptor, with `SEND` set on
/// sends.
const ACCEPT: u64 = u64::MAX;
const SEND: u64 = 1 << 62;

struct Conn {
    fd: OwnedFd,
    /// What the connection receives into, and where its answers are sent from.
    buf: Box<[u8]>,
    /// Where the receive in flight writes in `buf`.
    recv_at: usize,
    /// An incomplete frame set aside while answers before it in `buf` are being sent; it goes
    /// back to the start of `buf` when the receive after them completes.
    partial: Vec<u8>,
    upgraded: bool,
    /// The handshake's answer (sent from here).
    handshake: Vec<u8>,
    /// Operations the kernel holds that point into this connection's buffers.
    in_flight: u32,
    /// No receive follows: the connection is dropped when `in_flight` reaches 0.
    ending: bool,
}

/// Queues an operation, submitting what is queued first when the queue is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every entry points into a connection's buffers, which stay allocated while
        // the connection's `in_flight` count (raised by the caller) is above zero.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

impl Conn {
    fn send(
        &mut self,
        ring: &mut IoUring,
        slot: u64,
        ptr: *const u8,
        len: usize,
        link: bool,
    ) -> io::Result<()> {
        // MSG_WAITALL: the ring sends the rest of a short send itself, so the linked receive
        // starts only once every byte is sent.
        let entry = opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, len as u32)
            .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
            .build()
            .user_data(slot | SEND);
        let entry = if link { entry.flags(squeue::Flags::IO_LINK) } else { entry };
        self.in_flight += 1;
        push(ring, &entry)
    }

    fn receive(&mut self, ring: &mut IoUring, slot: u64) -> io::Result<()> {
        let at = self.recv_at;
        // SAFETY: `at` < BUF, so the pointer is inside `buf`.
        let ptr = unsafe { self.buf.as_mut_ptr().add(at) };
        let entry =
            opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, (BUF - at) as u32).build().user_data(slot);
        self.in_flight += 1;
        push(ring, &entry)
    }

    /// Takes `got` received bytes: answers what is whole and queues the sends and the next
    /// receive. `Err(End)` when the connection ends (its last answers are still queued).
    fn received(
        &mut self,
        ring: &mut IoUring,
        slot: u64,
        got: usize,
        pieces: &mut Vec<(usize, usize)>,
    ) -> Result<(), End> {
        let mut filled = self.recv_at + got;
        self.buf[..self.partial.len()].copy_from_slice(&self.partial);
        self.partial.clear();
        let mut pos = 0;
        let mut handshake = None;
        if !self.upgraded {
            pos = match answer_handshake(&self.buf[..filled], &mut self.handshake)? {
                Some(head) => head,
                None if filled < BUF => {
                    self.recv_at = filled;
                    return self.receive(ring, slot).map_err(|_| End);
                }
                None => return Err(End),
            };
            self.upgraded = true;
            handshake = Some((self.handshake.as_ptr(), self.handshake.len()));
        }
        pieces.clear();
        let (rest, result) = answer_frames(&mut self.buf[..filled], pos, BUF, pieces);
        // The answers packed together (short ones are 4 bytes apart), so one send takes them.
        let (start, mut end) = pieces.first().map_or((0, 0), |&(start, _)| (start, start));
        for &(from, to) in pieces.iter() {
            self.buf.copy_within(from..to, end);
            end += to - from;
        }
        // SAFETY: `start` <= `end` <= BUF.
        let answers = (end > start).then(|| (unsafe { self.buf.as_ptr().add(start) }, end - start));
        let sending = handshake.is_some() || answers.is_some();
        // Each send is linked to what follows it: the next send, or the next receive unless
        // the connection ends.
        let mut sends = [handshake, answers].into_iter().flatten().peekable();
        while let Some((ptr, len)) = sends.next() {
            let link = result.is_ok() || sends.peek().is_some();
            self.send(ring, slot, ptr, len, link).map_err(|_| End)?;
        }
        result?;
        // The incomplete frame at `rest` waits aside if answers before it are being sent, and
        // moves to the start of the buffer if not; the next receive goes after it.
        if sending {
            self.partial.extend_from_slice(&self.buf[rest..filled]);
        } else {
            self.buf.copy_within(rest..filled, 0);
        }
        filled -= rest;
        self.recv_at = filled;
        self.receive(ring, slot).map_err(|_| End)
    }
}

fn run(listener: TcpListener) -> io::Result<()> {
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(2 * ENTRIES)
        .build(ENTRIES)?;
    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).flags(libc::SOCK_CLOEXEC).build();
    push(&mut ring, &accept.clone().user_data(ACCEPT))?;
    // Connections by descriptor number (the socket closes when its entry is dropped).
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(2 * ENTRIES as usize);
    let mut pieces = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        done.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        for (data, result, flags) in done.drain(..) {
            if data == ACCEPT {
                if result >= 0 {
                    // SAFETY: the kernel just returned this descriptor open; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(result) };
                    set_nodelay(fd.as_raw_fd());
                    let slot = result as usize;
                    if conns.len() <= slot {
                        conns.resize_with(slot + 1, || None);
                    }
                    let conn = conns[slot].insert(Conn {
                        fd,
                        buf: vec![0; BUF].into_boxed_slice(),
                        recv_at: 0,
                        partial: Vec::new(),
                        upgraded: false,
                        handshake: Vec::new(),
                        in_flight: 0,
                        ending: false,
                    });
                    if conn.receive(&mut ring, slot as u64).is_err() {
                        conn.ending = true;
                    }
                }
                if !cqueue::more(flags) {
                    push(&mut ring, &accept.clone().user_data(ACCEPT))?;
                }
                continue;
            }
            let slot = data & !SEND;
            let Some(conn) = conns.get_mut(slot as usize).and_then(Option::as_mut) else { continue };
            conn.in_flight -= 1;
            // A failed send cancels the receive linked after it, which ends the connection.
            let ending = if data & SEND != 0 {
                result < 0
            } else {
                conn.ending
                    || result <= 0
                    || conn.received(&mut ring, slot, result as usize, &mut pieces).is_err()
            };
            conn.ending |= ending;
            if conn.ending && conn.in_flight == 0 {
                conns[slot as usize] = None; // closes the socket
            }
        }
    }
}

fn main() -> io::Result<()> {
    run(listen_from_args()?)
}
