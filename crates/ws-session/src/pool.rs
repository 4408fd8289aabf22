//! Read buffers given back by sockets that went idle, kept per thread for the next socket
//! that gets bytes: a socket holds no buffer while it waits, yet a busy one does not pay an
//! allocation and a free for every message.

use std::cell::RefCell;

use bytes::BytesMut;

/// Most buffers kept per thread.
const POOL_MAX: usize = 64;
/// Largest buffer kept (larger ones go back to the allocator).
const POOLED_MAX: usize = 8 << 10;
/// Least room a kept buffer has.
const POOLED_MIN: usize = 1024;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `min` bytes: a pooled one when there is one big
/// enough, else a new one of `want` (at least `min`) bytes.
pub(crate) fn take(min: usize, want: usize) -> BytesMut {
    if min <= POOLED_MAX
        && let Ok(Some(buf)) = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            match pool.last() {
                Some(b) if b.capacity() >= min => pool.pop(),
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
pub(crate) fn give(mut buf: BytesMut) {
    if !buf.is_empty() || buf.capacity() > POOLED_MAX || !buf.try_reclaim(POOLED_MIN) {
        return;
    }
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_without_allocating() {
        let mut buf = take(1024, 2048);
        let cap = buf.capacity();
        buf.extend_from_slice(b"hello");
        let msg = buf.split_to(5).freeze();
        assert_eq!(&msg[..], b"hello");
        drop(msg);
        let ptr = buf.as_ptr() as usize - 5; // the allocation's start
        give(buf);
        let again = take(1024, 2048);
        assert!((ptr..ptr + cap).contains(&(again.as_ptr() as usize)), "the pooled allocation is reused");
        assert!(again.capacity() >= 1024 && again.is_empty());
    }

    #[test]
    fn a_live_message_keeps_its_bytes_when_its_buffer_is_pooled() {
        let mut buf = take(1024, 2048);
        buf.extend_from_slice(b"held");
        let msg = buf.split_to(4).freeze();
        give(buf);
        let mut other = take(1024, 2048);
        other.extend_from_slice(&[0xAA; 1024]);
        assert_eq!(&msg[..], b"held", "the pooled room must not overlap the message");
        assert!(!other.as_ptr_range().contains(&msg.as_ptr()));
    }

    #[test]
    fn small_and_large_buffers_are_not_pooled() {
        give(BytesMut::with_capacity(64 << 10));
        give(BytesMut::with_capacity(16));
        let buf = take(1024, 1024);
        assert!(buf.capacity() >= 1024 && buf.capacity() <= POOLED_MAX);
    }
}
