//! A bounded ring of recent durations with nearest-rank quantiles: how delivery and plugin
//! call times are reported (p50 / p99 in the admin views and `/metrics`).

use std::collections::VecDeque;
use std::time::Duration;

/// Durations kept for quantiles.
pub(crate) const SAMPLES: usize = 1024;

#[derive(Debug, Clone, Default)]
pub(crate) struct DurationSamples {
    /// The latest durations, oldest first, at most [`SAMPLES`].
    recent: VecDeque<Duration>,
    /// All durations ever recorded, added up (a Prometheus summary's `_sum`).
    pub(crate) total: Duration,
    /// How many were ever recorded (a Prometheus summary's `_count`).
    pub(crate) count: u64,
}

impl DurationSamples {
    pub(crate) fn record(&mut self, took: Duration) {
        if self.recent.len() == SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        self.total += took;
        self.count += 1;
    }

    /// The durations kept now.
    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }

    /// The `q` quantile (0.0 to 1.0, nearest rank) of the kept durations.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let mut times: Vec<Duration> = self.recent.iter().copied().collect();
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * times.len() as f64).ceil() as usize;
        Some(times[rank.saturating_sub(1).min(times.len() - 1)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_ring_with_nearest_rank_quantiles() {
        let mut s = DurationSamples::default();
        assert_eq!(s.quantile(0.5), None);
        for ms in 1..=(SAMPLES as u64 + 100) {
            s.record(Duration::from_millis(ms));
        }
        assert_eq!(s.len(), SAMPLES);
        // The oldest 100 are gone: 101 ms ..= 1124 ms remain.
        assert_eq!(s.quantile(0.0), Some(Duration::from_millis(101)));
        assert_eq!(s.quantile(0.5), Some(Duration::from_millis(612)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(1124)));
        let total: u64 = (1..=(SAMPLES as u64 + 100)).sum();
        assert_eq!(s.total, Duration::from_millis(total));
        assert_eq!(s.count, SAMPLES as u64 + 100);
    }
}
