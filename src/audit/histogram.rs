//! A lock-free fixed-bucket latency histogram, one of the counters in `Stats`.
//!
//! Its own file so that `stats.rs` (which holds histograms) and `metrics.rs` (which renders
//! `Stats`) both depend on it without depending on each other in a circle. Observing is two
//! relaxed atomic adds: the request path never takes a lock for it (the `prometheus-client`
//! histogram would).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds: 10 µs .. 1 s (a decision is normally a few µs; a slow one
/// means data or identity trouble).
pub const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 13],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The histogram as exposition wants it: the sum in seconds, the count, and each bucket's
    /// upper bound with the observations in it (not cumulative; the last bound is infinity,
    /// which the encoder writes as `+Inf`).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets = Vec::with_capacity(BUCKETS.len() + 1);
        let mut count = 0;
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}
