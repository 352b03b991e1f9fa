//! Latency recording for every load generator: an HDR histogram in microseconds, and its
//! final percentiles in milliseconds as a [`record::Latency`](crate::record::Latency).
//!
//! It owns the histogram's bounds and the unit conversion, so that every scenario of both
//! protocols reports latencies the same way. It must never drop a sample: values outside the
//! bounds are clamped to them (saturating), not lost.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::record::Latency;

/// Highest value tracked: one hour, in microseconds (anything slower is recorded as one hour;
/// the per-request timeouts are far below it).
const MAX_US: u64 = 3_600_000_000;

/// One HDR histogram of latencies, in microseconds, 3 significant digits.
pub struct Recorder {
    hist: Histogram<u64>,
}

impl Recorder {
    pub fn new() -> Recorder {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5): this cannot fail at run time.
        let hist = Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds");
        Recorder { hist }
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros().min(u128::from(MAX_US)) as u64);
    }

    /// Records a value in microseconds; 0 (an event that came before its cause's reply, say)
    /// is recorded as the lowest bucket, 1 us.
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so `add` cannot fail; saturate anyway rather than lose.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The run's percentiles in milliseconds, rounded to the microsecond; `None` if nothing
    /// was recorded.
    pub fn summary(&self) -> Option<Latency> {
        if self.hist.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50: ms(self.hist.value_at_quantile(0.50)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            p999: ms(self.hist.value_at_quantile(0.999)),
            max: ms(self.hist.max()),
            mean: round3(self.hist.mean() / 1000.0),
        })
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// `x` rounded to 3 decimals (microseconds when `x` is in milliseconds).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `x` rounded to 6 decimals (microseconds when `x` is in seconds).
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let mut r = Recorder::new();
        assert!(r.summary().is_none());
        for us in 1..=1000u64 {
            r.record_us(us * 1000);
        }
        let mut other = Recorder::new();
        other.record(Duration::from_secs(2));
        r.merge(&other);
        let s = r.summary().unwrap();
        assert_eq!(r.count(), 1001);
        // 3 significant digits: values are exact to 0.1%.
        assert!((s.p50 - 501.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 2000.0).abs() < 2.0, "{s:?}");
        r.record_us(0);
        r.record(Duration::from_secs(10 * 3600));
        assert_eq!(r.count(), 1003);
    }
}
