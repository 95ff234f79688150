//! Small statistics over repeated measurements: medians of rounds and percentiles of timings.

use std::time::Duration;

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        f64::midpoint(sorted[middle - 1], sorted[middle])
    } else {
        sorted[middle]
    })
}

/// Percentiles of a set of durations (nearest rank, no interpolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// How many values.
    pub count: usize,
    /// The smallest.
    pub min: Duration,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl Spread {
    /// Summarises `times`; `None` when there are none.
    pub fn of(mut times: Vec<Duration>) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let at = |percent: usize| {
            // Nearest rank: the smallest value with at least `percent`% of values at or below it.
            let rank = (times.len() * percent).div_ceil(100).max(1);
            times[rank - 1]
        };
        Some(Self {
            count: times.len(),
            min: times[0],
            p50: at(50),
            p90: at(90),
            p99: at(99),
            max: times[times.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn there_is_no_median_of_nothing() {
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let times: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let spread = Spread::of(times).unwrap();
        assert_eq!(spread.count, 100);
        assert_eq!(spread.min, Duration::from_millis(1));
        assert_eq!(spread.p50, Duration::from_millis(50));
        assert_eq!(spread.p90, Duration::from_millis(90));
        assert_eq!(spread.p99, Duration::from_millis(99));
        assert_eq!(spread.max, Duration::from_millis(100));
    }

    #[test]
    fn one_value_is_every_percentile() {
        let spread = Spread::of(vec![Duration::from_millis(7)]).unwrap();
        assert_eq!(spread.p50, Duration::from_millis(7));
        assert_eq!(spread.p99, Duration::from_millis(7));
    }
}
