//! Where the two CPUs of a run sit relative to each other, measured while it runs.
//!
//! On a virtual machine the host may move the vCPUs at any time: the server's CPU and the
//! load generator's can share a core's caches one moment and be far apart the next. On the
//! machine this was written on, a cache line goes from one to the other and back in about
//! 55 ns in the first case and 450 ns in the second, and a loopback echo server's CPU per
//! message moves by a third between the two (every message crosses between the CPUs several
//! times). So a run is cut into slices, each slice is bracketed by a probe of that round
//! trip, and the figures are also summed per placement: servers are then compared in the
//! same placement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Round trips per burst, and bursts per probe (the fastest burst counts).
const ROUND_TRIPS: u64 = 64;
const BURSTS: usize = 3;
/// How long a probe waits for the partner thread to run on the server's CPU (which the
/// server keeps busy), or for one answer, before it gives up.
const PARTNER_WAIT: Duration = Duration::from_millis(20);

/// The partner's states.
const SLEEP: u8 = 0;
const WANTED: u8 = 1;
const RUNNING: u8 = 2;
const EXIT: u8 = 3;

/// Measures the cache-line round trip between this thread's CPU and a partner thread's.
#[derive(Debug)]
pub(crate) struct Probe {
    state: Arc<AtomicU8>,
    /// The bounced line: the probe writes odd values, the partner answers with the next even.
    line: Arc<AtomicU64>,
    next: u64,
    partner: Option<thread::JoinHandle<()>>,
}

impl Probe {
    /// Starts the partner thread on `partner_cpu` and moves the calling thread to `own_cpu`.
    pub(crate) fn start(own_cpu: usize, partner_cpu: usize) -> std::io::Result<Probe> {
        pin_current(own_cpu)?;
        let state = Arc::new(AtomicU8::new(SLEEP));
        let line = Arc::new(AtomicU64::new(0));
        let (s, l) = (state.clone(), line.clone());
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let partner = thread::Builder::new().name("placement-probe".into()).spawn(move || {
            let pinned = pin_current(partner_cpu);
            let ok = pinned.is_ok();
            let _ = pinned_tx.send(pinned);
            if ok {
                partner(&s, &l);
            }
        })?;
        pinned_rx.recv().map_err(|_| std::io::Error::other("probe partner did not start"))??;
        Ok(Probe { state, line, next: 1, partner: Some(partner) })
    }

    /// The fastest round trip of a few short bursts, in ns; `None` if the partner did not get
    /// its CPU in time or lost it during every burst.
    pub(crate) fn measure(&mut self) -> Option<f64> {
        self.state.store(WANTED, Ordering::Release);
        if let Some(p) = &self.partner {
            p.thread().unpark();
        }
        let mut best: Option<f64> = None;
        let start = Instant::now();
        'probe: {
            while self.state.load(Ordering::Acquire) != RUNNING {
                if start.elapsed() > PARTNER_WAIT {
                    break 'probe;
                }
                std::hint::spin_loop();
            }
            for _ in 0..BURSTS {
                let t = Instant::now();
                for _ in 0..ROUND_TRIPS {
                    let value = self.next;
                    self.next += 2;
                    self.line.store(value, Ordering::Release);
                    let mut spins = 0u32;
                    while self.line.load(Ordering::Acquire) != value + 1 {
                        std::hint::spin_loop();
                        spins += 1;
                        if spins.is_multiple_of(1024) && t.elapsed() > PARTNER_WAIT {
                            break 'probe;
                        }
                    }
                }
                let ns = t.elapsed().as_nanos() as f64 / ROUND_TRIPS as f64;
                best = Some(best.map_or(ns, |b: f64| b.min(ns)));
            }
        }
        // Sends the partner back to sleep (also after a timeout).
        self.state.store(SLEEP, Ordering::Release);
        best
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.state.store(EXIT, Ordering::Release);
        if let Some(p) = self.partner.take() {
            p.thread().unpark();
            let _ = p.join();
        }
    }
}

/// The partner: parks until wanted, then answers every odd value with the next even one
/// while the probe keeps it running.
fn partner(state: &AtomicU8, line: &AtomicU64) {
    loop {
        thread::park();
        match state.compare_exchange(WANTED, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(EXIT) => return,
            Err(_) => continue, // a spurious wake-up, or the probe already gave up
        }
        while state.load(Ordering::Acquire) == RUNNING {
            let v = line.load(Ordering::Acquire);
            if !v.is_multiple_of(2) {
                line.store(v + 1, Ordering::Release);
            } else {
                std::hint::spin_loop();
            }
        }
        if state.load(Ordering::Acquire) == EXIT {
            return;
        }
    }
}

fn pin_current(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `set` is a plain bit set, zero-initialised, and only `cpu` is added to it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A round trip under this many ns means the two CPUs share a core's caches ("close");
/// between separate cores it takes several times as long.
pub const CLOSE_BELOW_NS: f64 = 200.0;

/// The window's figures per placement, and the probes' range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// Slices with both probes close.
    pub close: PlacementTotals,
    /// Slices with both probes distant.
    pub distant: PlacementTotals,
    /// Seconds in slices whose probes disagreed or failed (counted in neither).
    pub mixed_s: f64,
    /// The fastest probe, ns.
    pub probe_min_ns: Option<f64>,
    /// The slowest probe, ns.
    pub probe_max_ns: Option<f64>,
}

impl Placement {
    pub(crate) fn record(
        &mut self,
        before: Option<f64>,
        after: Option<f64>,
        seconds: f64,
        messages: u64,
        cpu_ns: u64,
    ) {
        // Both ends: the window's first probe is only ever a slice's `before` (a slice's
        // `after` is the next one's `before`, so counting it twice changes nothing).
        for ns in [before, after].into_iter().flatten() {
            self.probe_min_ns = Some(self.probe_min_ns.map_or(ns, |m| m.min(ns)));
            self.probe_max_ns = Some(self.probe_max_ns.map_or(ns, |m| m.max(ns)));
        }
        match classify(before, after, CLOSE_BELOW_NS) {
            Some(true) => self.close.add(seconds, messages, cpu_ns),
            Some(false) => self.distant.add(seconds, messages, cpu_ns),
            None => self.mixed_s += seconds,
        }
    }
}

/// What a run measured in one placement: wall time, messages and server CPU, summed over
/// the slices whose probes at both ends fell in it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlacementTotals {
    /// Seconds of the window.
    pub seconds: f64,
    /// Messages verified.
    pub messages: u64,
    /// Server CPU, nanoseconds (scheduler run time of all its threads).
    pub server_cpu_ns: u64,
}

impl PlacementTotals {
    pub(crate) fn add(&mut self, seconds: f64, messages: u64, server_cpu_ns: u64) {
        self.seconds += seconds;
        self.messages += messages;
        self.server_cpu_ns += server_cpu_ns;
    }

    /// Messages per second.
    pub fn msgs_per_s(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.messages as f64 / self.seconds)
    }

    /// Server CPU µs per message.
    pub fn cpu_us_per_msg(&self) -> Option<f64> {
        (self.messages > 0).then(|| self.server_cpu_ns as f64 / 1000.0 / self.messages as f64)
    }
}

/// A slice's placement from the probes at its two ends: `Some(true)` close (both under
/// `threshold_ns`), `Some(false)` distant (both at or over it), `None` mixed or unknown.
pub(crate) fn classify(before: Option<f64>, after: Option<f64>, threshold_ns: f64) -> Option<bool> {
    match (before, after) {
        (Some(a), Some(b)) if (a < threshold_ns) == (b < threshold_ns) => Some(a < threshold_ns),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_classified_by_both_ends() {
        assert_eq!(classify(Some(55.0), Some(60.0), 200.0), Some(true));
        assert_eq!(classify(Some(450.0), Some(430.0), 200.0), Some(false));
        assert_eq!(classify(Some(55.0), Some(430.0), 200.0), None);
        assert_eq!(classify(None, Some(55.0), 200.0), None);
    }

    #[test]
    fn slices_are_summed_per_placement() {
        let mut p = Placement::default();
        p.record(Some(55.0), Some(60.0), 0.1, 100, 700_000);
        assert_eq!((p.probe_min_ns, p.probe_max_ns), (Some(55.0), Some(60.0)), "the first probe counts");
        p.record(Some(60.0), Some(450.0), 0.1, 90, 800_000);
        p.record(Some(450.0), Some(440.0), 0.1, 80, 900_000);
        p.record(Some(440.0), None, 0.1, 80, 900_000);
        assert_eq!(p.close, PlacementTotals { seconds: 0.1, messages: 100, server_cpu_ns: 700_000 });
        assert_eq!(p.distant, PlacementTotals { seconds: 0.1, messages: 80, server_cpu_ns: 900_000 });
        assert!((p.mixed_s - 0.2).abs() < 1e-9);
        assert_eq!((p.probe_min_ns, p.probe_max_ns), (Some(55.0), Some(450.0)));
    }

    #[test]
    fn totals_divide_only_when_there_is_something() {
        let mut t = PlacementTotals::default();
        assert_eq!((t.msgs_per_s(), t.cpu_us_per_msg()), (None, None));
        t.add(0.5, 1000, 3_000_000);
        t.add(0.5, 1000, 3_000_000);
        assert_eq!(t.msgs_per_s(), Some(2000.0));
        assert_eq!(t.cpu_us_per_msg(), Some(3.0));
    }

    #[test]
    fn the_probe_measures_a_round_trip_between_two_cpus() {
        let result = thread::spawn(|| {
            let mut probe = Probe::start(1, 0).unwrap();
            (0..5).filter_map(|_| probe.measure()).fold(f64::MAX, f64::min)
        })
        .join()
        .unwrap();
        // Any real round trip between two CPUs takes some nanoseconds and well under 50 µs.
        assert!(result > 1.0 && result < 50_000.0, "{result} ns");
    }
}
