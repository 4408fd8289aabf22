//! Buffers given back by sockets that went idle, kept per thread for the next socket that
//! needs one: a socket holds no buffer while it waits, yet a busy one does not pay an
//! allocation and a free for every message. Two pools: read buffers ([`READ`]) and output
//! buffers ([`WRITE`]), which have different sizes.

use std::cell::RefCell;
use std::thread::LocalKey;

use bytes::BytesMut;

/// Most buffers kept per thread and pool.
const POOL_MAX: usize = 64;
/// Largest buffer kept (larger ones go back to the allocator).
const POOLED_MAX: usize = 8 << 10;

/// One thread's buffers of one use.
pub(crate) struct Pool {
    buffers: RefCell<Vec<BytesMut>>,
    /// Least room a kept buffer has.
    min: usize,
}

impl Pool {
    const fn new(min: usize) -> Self {
        Pool { buffers: RefCell::new(Vec::new()), min }
    }
}

thread_local! {
    /// Read buffers (1 to 8 KiB).
    pub(crate) static READ: Pool = const { Pool::new(1024) };
    /// Output buffers (512 B to 8 KiB): a reply to a message after an idle spell is encoded
    /// into one of these instead of a new allocation.
    pub(crate) static WRITE: Pool = const { Pool::new(ws_proto::OUTPUT_MIN) };
}

/// An empty buffer with room for at least `min` bytes: a pooled one when there is one big
/// enough, else a new one of `want` (at least `min`) bytes.
pub(crate) fn take(pool: &'static LocalKey<Pool>, min: usize, want: usize) -> BytesMut {
    if min <= POOLED_MAX
        && let Ok(Some(buf)) = pool.try_with(|pool| {
            let mut buffers = pool.buffers.borrow_mut();
            match buffers.last() {
                Some(b) if b.capacity() >= min => buffers.pop(),
                _ => None,
            }
        })
    {
        return buf;
    }
    BytesMut::with_capacity(want.max(min))
}

/// Takes back an emptied buffer. (A `BytesMut` owns its spare room alone, even while the
/// messages split off it still live, so pooling one is always sound; `try_reclaim` moves
/// the room back to the start of the allocation when those messages are gone.)
pub(crate) fn give(pool: &'static LocalKey<Pool>, mut buf: BytesMut) {
    let _ = pool.try_with(|pool| {
        if !buf.is_empty() || buf.capacity() > POOLED_MAX || !buf.try_reclaim(pool.min) {
            return;
        }
        let mut buffers = pool.buffers.borrow_mut();
        if buffers.len() < POOL_MAX {
            buffers.push(buf);
        }
    });
}

/// The start and size of the allocation the next `take` from `pool` would return.
#[cfg(test)]
pub(crate) fn next_allocation(pool: &'static LocalKey<Pool>) -> Option<(usize, usize)> {
    pool.with(|pool| pool.buffers.borrow().last().map(|b| (b.as_ptr() as usize, b.capacity())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_without_allocating() {
        let mut buf = take(&READ, 1024, 2048);
        let cap = buf.capacity();
        buf.extend_from_slice(b"hello");
        let msg = buf.split_to(5).freeze();
        assert_eq!(&msg[..], b"hello");
        drop(msg);
        let ptr = buf.as_ptr() as usize - 5; // the allocation's start
        give(&READ, buf);
        let again = take(&READ, 1024, 2048);
        assert!((ptr..ptr + cap).contains(&(again.as_ptr() as usize)), "the pooled allocation is reused");
        assert!(again.capacity() >= 1024 && again.is_empty());
    }

    #[test]
    fn a_live_message_keeps_its_bytes_when_its_buffer_is_pooled() {
        let mut buf = take(&READ, 1024, 2048);
        buf.extend_from_slice(b"held");
        let msg = buf.split_to(4).freeze();
        give(&READ, buf);
        let mut other = take(&READ, 1024, 2048);
        other.extend_from_slice(&[0xAA; 1024]);
        assert_eq!(&msg[..], b"held", "the pooled room must not overlap the message");
        assert!(!other.as_ptr_range().contains(&msg.as_ptr()));
    }

    #[test]
    fn small_and_large_buffers_are_not_pooled() {
        give(&READ, BytesMut::with_capacity(64 << 10));
        give(&READ, BytesMut::with_capacity(16));
        let buf = take(&READ, 1024, 1024);
        assert!(buf.capacity() >= 1024 && buf.capacity() <= POOLED_MAX);
    }
}
