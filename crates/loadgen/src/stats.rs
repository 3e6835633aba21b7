//! Summaries of repeated measurements: medians across runs, latency percentiles, and ratios.
//!
//! Everything here is pure arithmetic on samples so that the reports can be checked without running
//! a broker.

use std::time::Duration;

/// The spread of one quantity measured over several runs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The samples in the order they were taken.
    pub samples: Vec<f64>,
    /// The median; for an even count, the mean of the two middle samples.
    pub median: f64,
    /// The smallest sample.
    pub minimum: f64,
    /// The largest sample.
    pub maximum: f64,
}

impl RunSummary {
    /// Summarizes `samples`; returns `None` when there are none or one is not a finite number.
    pub fn from_samples(samples: Vec<f64>) -> Option<RunSummary> {
        if samples.is_empty() || samples.iter().any(|sample| !sample.is_finite()) {
            return None;
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        };
        Some(RunSummary {
            minimum: sorted[0],
            maximum: sorted[sorted.len() - 1],
            median,
            samples,
        })
    }

    /// One line: the median, then the range and every sample, each with `decimals` decimals.
    pub fn describe(&self, decimals: usize) -> String {
        let samples = self
            .samples
            .iter()
            .map(|sample| format!("{sample:.decimals$}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "median {:.decimals$} (min {:.decimals$}, max {:.decimals$}; runs: {samples})",
            self.median, self.minimum, self.maximum
        )
    }
}

/// Latency percentiles of one series of round trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyPercentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub maximum: Duration,
    pub mean: Duration,
}

impl LatencyPercentiles {
    /// Computes nearest-rank percentiles; returns `None` for an empty series.
    pub fn from_latencies(latencies: &[Duration]) -> Option<LatencyPercentiles> {
        if latencies.is_empty() {
            return None;
        }
        let mut sorted = latencies.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let count = sorted.len();
        Some(LatencyPercentiles {
            count,
            p50: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            p99: nearest_rank(&sorted, 99),
            maximum: sorted[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        })
    }
}

/// The nearest-rank percentile of an ascending, non-empty slice: the smallest sample such that at
/// least `percent` percent of the samples are less than or equal to it.
pub fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Messages per second for `messages` messages delivered in `elapsed`.
pub fn rate_per_second(messages: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return f64::INFINITY;
    }
    messages as f64 / seconds
}

/// Milliseconds with microsecond precision, for printing latencies.
pub fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `numerator / denominator` printed as a ratio such as `1.23x`, or `n/a` when it is undefined.
pub fn ratio(numerator: f64, denominator: f64) -> String {
    if denominator > 0.0 && numerator.is_finite() && denominator.is_finite() {
        format!("{:.2}x", numerator / denominator)
    } else {
        "n/a".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    fn check(samples: &[f64], expected: Expect) {
        let rendered = match RunSummary::from_samples(samples.to_vec()) {
            Some(summary) => summary.describe(1),
            None => "no summary".to_owned(),
        };
        expected.assert_eq(&rendered);
    }

    #[test]
    fn summaries() {
        check(&[], expect!["no summary"]);
        check(&[f64::NAN, 1.0], expect!["no summary"]);
        check(&[3.0], expect!["median 3.0 (min 3.0, max 3.0; runs: 3.0)"]);
        check(
            &[5.0, 1.0, 4.0, 2.0, 3.0],
            expect!["median 3.0 (min 1.0, max 5.0; runs: 5.0, 1.0, 4.0, 2.0, 3.0)"],
        );
        check(
            &[10.0, 2.0, 4.0, 8.0],
            expect!["median 6.0 (min 2.0, max 10.0; runs: 10.0, 2.0, 4.0, 8.0)"],
        );
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_microseconds() {
        let latencies: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let percentiles = LatencyPercentiles::from_latencies(&latencies).expect("non-empty");
        expect![[r#"
            LatencyPercentiles {
                count: 1000,
                p50: 500µs,
                p90: 900µs,
                p99: 990µs,
                maximum: 1ms,
                mean: 500.5µs,
            }
        "#]]
        .assert_debug_eq(&percentiles);
        assert_eq!(LatencyPercentiles::from_latencies(&[]), None);
    }

    #[test]
    fn ratios_and_rates() {
        let rendered = [
            ratio(30_000.0, 20_000.0),
            ratio(1.0, 0.0),
            ratio(f64::INFINITY, 2.0),
            format!("{:.1}", rate_per_second(100_000, Duration::from_secs(4))),
            format!("{:.3}", milliseconds(Duration::from_micros(1234))),
        ];
        expect![[r#"["1.50x", "n/a", "n/a", "25000.0", "1.234"]"#]]
            .assert_eq(&format!("{rendered:?}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The nearest-rank percentile agrees with counting: at least `percent` percent of the samples
        /// are at or below it, and fewer than that are strictly below it.
        #[test]
        fn nearest_rank_matches_counting(
            mut micros in proptest::collection::vec(0u64..10_000, 1..200),
            percent in 1usize..=100,
        ) {
            micros.sort_unstable();
            let sorted: Vec<Duration> = micros.iter().copied().map(Duration::from_micros).collect();
            let value = nearest_rank(&sorted, percent);
            let at_or_below = sorted.iter().filter(|sample| **sample <= value).count();
            let strictly_below = sorted.iter().filter(|sample| **sample < value).count();
            prop_assert!(at_or_below * 100 >= percent * sorted.len());
            prop_assert!(strictly_below * 100 < percent * sorted.len());
        }

        /// The median lies between the extremes, and as many samples lie on each side of it.
        #[test]
        fn median_splits_the_samples(samples in proptest::collection::vec(-1.0e6f64..1.0e6, 1..50)) {
            let summary = RunSummary::from_samples(samples.clone()).expect("finite, non-empty");
            prop_assert!(summary.minimum <= summary.median && summary.median <= summary.maximum);
            let below = samples.iter().filter(|sample| **sample < summary.median).count();
            let above = samples.iter().filter(|sample| **sample > summary.median).count();
            prop_assert!(below <= samples.len() / 2 && above <= samples.len() / 2);
        }
    }
}
