//! A log-linear latency histogram: constant memory and a few instructions per sample, with
//! every bucket within 1/16 of its value (percentiles are reported at the bucket's middle,
//! so within about 3 %). The maximum is kept exactly.

use std::time::Duration;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (LINEAR + (64 - (SUB_BITS as u64 + 1)) * SUB) as usize;

/// Latency samples in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let exp = 63 - u64::from(ns.leading_zeros()); // >= SUB_BITS + 1
    let mantissa = (ns >> (exp - u64::from(SUB_BITS))) & (SUB - 1);
    (LINEAR + (exp - u64::from(SUB_BITS) - 1) * SUB + mantissa) as usize
}

/// The middle of a bucket's range of values.
fn middle(index: usize) -> u64 {
    let i = index as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + u64::from(SUB_BITS) + 1;
    let mantissa = (i - LINEAR) % SUB;
    let low = (SUB + mantissa) << (exp - u64::from(SUB_BITS));
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    low + width / 2
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, max: 0 }
    }

    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// How many samples there are.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest sample, exactly.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The sample at quantile `q` (0.5 for the median), or zero with no samples.
    ///
    /// ```
    /// let mut h = benches::Histogram::new();
    /// for us in 1..=100 {
    ///     h.record(std::time::Duration::from_micros(us));
    /// }
    /// let p99 = h.quantile(0.99).as_micros();
    /// assert!((96..=102).contains(&p99), "{p99}");
    /// ```
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(middle(i).min(self.max));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last && b < BUCKETS, "{ns}");
            last = b;
            let mid = middle(b) as f64;
            assert!((mid - ns as f64).abs() <= ns as f64 / 32.0 + 1.0, "{ns} -> {mid}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for ns in 1..=1000u64 {
            h.record(Duration::from_nanos(ns * 1000));
        }
        let p50 = h.quantile(0.5).as_nanos() as f64;
        assert!((p50 - 500_000.0).abs() < 500_000.0 * 0.04, "{p50}");
        assert_eq!(h.max(), Duration::from_micros(1000));
        assert_eq!(h.count(), 1000);
    }
}
