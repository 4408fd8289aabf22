//! Counting on the echo path: each socket counts its own messages and bytes in counters only
//! its own task writes (a load and a store, no locked instruction, no cache line shared with
//! another socket); a scrape sums the live sockets of a class with what its closed sockets
//! left behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ws_proto::CloseCode;

/// Most distinct close codes counted per class; the rest are counted under code 0 (shown as
/// `other`), so a client choosing codes cannot grow the label set without bound.
const MAX_CLOSE_CODES: usize = 64;

/// One socket's counts. Written only by the socket's own task (the dedicated `server` task
/// or the shared socket's driver), read by scrapes.
#[derive(Default)]
struct Counts {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
}

/// A single writer adds without a read-modify-write instruction.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Counts {
    fn get(&self) -> [u64; 4] {
        [&self.messages_in, &self.bytes_in, &self.messages_out, &self.bytes_out]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

struct SocketMeter {
    counts: Counts,
    class: Arc<ClassMeter>,
}

/// A socket's counters, held by the task that reads and writes it.
pub(crate) struct Meter(Arc<SocketMeter>);

impl Meter {
    /// A piece of a message was read; `whole` when it was the last piece (a message is
    /// counted once, however many reads it took).
    #[inline]
    pub(crate) fn received(&self, bytes: usize, whole: bool) {
        let c = &self.0.counts;
        add(&c.bytes_in, bytes as u64);
        add(&c.messages_in, whole as u64);
    }

    /// One message of `bytes` payload bytes was queued for the peer.
    #[inline]
    pub(crate) fn sent(&self, bytes: usize) {
        let c = &self.0.counts;
        add(&c.bytes_out, bytes as u64);
        add(&c.messages_out, 1);
    }

    /// One encoded frame pushed by another task (a broadcast) was queued for the peer.
    #[inline]
    pub(crate) fn pushed(&self, frame: &[u8]) {
        self.sent(payload_len(frame));
    }

    /// The socket closed with `code`: its counts move to its class's totals.
    pub(crate) fn close(self, code: CloseCode) {
        let class = &self.0.class;
        let mut state = class.state.lock().unwrap_or_else(|e| e.into_inner());
        state.live.remove(&(Arc::as_ptr(&self.0) as usize));
        for (total, n) in state.retired.iter_mut().zip(self.0.counts.get()) {
            *total += n;
        }
        let known = state.closed.len() < MAX_CLOSE_CODES || state.closed.contains_key(&code.0);
        *state.closed.entry(if known { code.0 } else { 0 }).or_default() += 1;
    }
}

/// The payload length of one encoded server frame (unmasked; RFC 6455 §5.2).
fn payload_len(frame: &[u8]) -> usize {
    match frame.get(1).map(|b| b & 0x7f) {
        Some(126) if frame.len() >= 4 => u16::from_be_bytes([frame[2], frame[3]]) as usize,
        Some(127) if frame.len() >= 10 => {
            u64::from_be_bytes(frame[2..10].try_into().unwrap_or_default()) as usize
        }
        Some(n) if n < 126 => n as usize,
        _ => 0,
    }
}

/// The sockets of one class, live and closed.
pub(crate) struct ClassMeter {
    pub(crate) name: Arc<str>,
    opened: AtomicU64,
    state: Mutex<ClassState>,
}

#[derive(Default)]
struct ClassState {
    live: HashMap<usize, Arc<SocketMeter>>,
    /// The counts of closed sockets (as in [`Counts`]).
    retired: [u64; 4],
    /// Sockets closed, by close code.
    closed: BTreeMap<u16, u64>,
}

/// A class's numbers at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClassSnapshot {
    pub(crate) name: Arc<str>,
    pub(crate) open: u64,
    pub(crate) opened: u64,
    pub(crate) messages_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) messages_out: u64,
    pub(crate) bytes_out: u64,
    /// (close code, sockets); code 0 collects the codes past the first 64.
    pub(crate) closed: Vec<(u16, u64)>,
}

impl ClassMeter {
    pub(crate) fn new(name: Arc<str>) -> Arc<ClassMeter> {
        Arc::new(ClassMeter { name, opened: AtomicU64::new(0), state: Mutex::default() })
    }

    /// A new socket of this class.
    pub(crate) fn open(self: &Arc<Self>) -> Meter {
        let meter = Arc::new(SocketMeter { counts: Counts::default(), class: self.clone() });
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.live.insert(Arc::as_ptr(&meter) as usize, meter.clone());
        self.opened.fetch_add(1, Ordering::Relaxed);
        Meter(meter)
    }

    /// The live sockets' counts plus the closed ones', taken under the lock that moves a
    /// socket from one to the other (so none is counted twice or missed).
    pub(crate) fn snapshot(&self) -> ClassSnapshot {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut sums = state.retired;
        for socket in state.live.values() {
            for (sum, n) in sums.iter_mut().zip(socket.counts.get()) {
                *sum += n;
            }
        }
        ClassSnapshot {
            name: self.name.clone(),
            open: state.live.len() as u64,
            opened: self.opened.load(Ordering::Relaxed),
            messages_in: sums[0],
            bytes_in: sums[1],
            messages_out: sums[2],
            bytes_out: sums[3],
            closed: state.closed.iter().map(|(&code, &n)| (code, n)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_lengths_of_all_three_forms() {
        let frame = |len: usize| ws_proto::encode_server_frame(ws_proto::MessageKind::Binary, &vec![0; len]);
        for len in [0, 125, 126, 65535, 65536] {
            assert_eq!(payload_len(&frame(len)), len);
        }
    }

    #[test]
    fn closed_sockets_keep_their_counts() {
        let class = ClassMeter::new("c".into());
        let (a, b) = (class.open(), class.open());
        a.received(3, false);
        a.received(2, true);
        a.sent(5);
        b.pushed(&ws_proto::encode_server_frame(ws_proto::MessageKind::Text, b"hi"));
        a.close(CloseCode(4001));
        let s = class.snapshot();
        assert_eq!((s.open, s.opened, s.messages_in, s.bytes_in), (1, 2, 1, 5));
        assert_eq!((s.messages_out, s.bytes_out, s.closed.as_slice()), (2, 7, &[(4001, 1)][..]));
        b.close(CloseCode::NORMAL);
        assert_eq!(class.snapshot().open, 0);
    }
}
