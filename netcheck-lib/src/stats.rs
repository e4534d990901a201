//! Distribution statistics: how evenly a Service spread requests over its backends, and latency
//! percentiles.
//!
//! Pure functions over counts and samples, so the figures in a report can be checked by hand.

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// How requests spread over backends, and how plausible that spread is under an even split.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Requests answered per backend (backends that answered none included, with 0).
    pub counts: BTreeMap<String, u64>,
    /// Sum of all counts.
    pub total: u64,
    /// Pearson's chi-square statistic against an even split.
    pub chi_square: f64,
    /// Degrees of freedom of the test: backends − 1.
    pub degrees_of_freedom: u32,
    /// Probability of a spread at least this uneven if the proxy balanced evenly.
    pub p_value: f64,
    /// The least-served backend's count as a share of its fair share (1.0 = fair, 0.0 = starved).
    pub min_share_of_fair: f64,
}

/// Tests `counts` (requests per backend) against an even split with a chi-square goodness-of-fit
/// test.
///
/// Returns `None` when there are fewer than 2 backends or no requests at all, because evenness
/// means nothing there.
pub fn evenness(counts: &BTreeMap<String, u64>) -> Option<Distribution> {
    let k = counts.len();
    let total: u64 = counts.values().sum();
    if k < 2 || total == 0 {
        return None;
    }
    let expected = total as f64 / k as f64;
    let chi_square = counts.values().map(|&c| (c as f64 - expected).powi(2) / expected).sum::<f64>();
    let degrees_of_freedom = u32::try_from(k - 1).unwrap_or(u32::MAX);
    let min = counts.values().copied().min().unwrap_or(0);
    Some(Distribution {
        counts: counts.clone(),
        total,
        chi_square,
        degrees_of_freedom,
        p_value: chi_square_p_value(chi_square, degrees_of_freedom),
        min_share_of_fair: min as f64 / expected,
    })
}

/// Upper-tail probability of the chi-square distribution.
fn chi_square_p_value(chi_square: f64, degrees_of_freedom: u32) -> f64 {
    match ChiSquared::new(f64::from(degrees_of_freedom)) {
        Ok(dist) => dist.sf(chi_square).clamp(0.0, 1.0),
        // Unreachable with k >= 2; NaN makes any threshold comparison fail rather than pass.
        Err(_) => f64::NAN,
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Nearest-rank percentiles of `samples_ms`; NaN samples are ignored.
///
/// Nearest-rank always returns an observed sample, never an interpolated value, so a reported
/// p99 is a latency that really happened. Returns `None` when there are no usable samples.
pub fn percentiles(samples_ms: &[f64]) -> Option<Percentiles> {
    let mut sorted: Vec<f64> = samples_ms.iter().copied().filter(|s| !s.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(Percentiles {
        p50: nearest_rank(&sorted, 50),
        p90: nearest_rank(&sorted, 90),
        p99: nearest_rank(&sorted, 99),
        max: sorted[sorted.len() - 1],
    })
}

/// The sample at rank ⌈p/100 · n⌉ (1-based) of a sorted, non-empty slice.
fn nearest_rank(sorted: &[f64], p: usize) -> f64 {
    let n = sorted.len();
    let rank = (p * n).div_ceil(100).max(1);
    sorted[rank.min(n) - 1]
}

/// Rounds to two decimals, as reports show milliseconds.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_split_passes_and_a_skewed_one_fails_both_measures() {
        let even = BTreeMap::from([("a".to_string(), 100), ("b".to_string(), 100), ("c".to_string(), 100)]);
        assert!(evenness(&even).expect("3 backends").p_value > 0.99);
        let skewed = BTreeMap::from([("a".to_string(), 280), ("b".to_string(), 10), ("c".to_string(), 10)]);
        let d = evenness(&skewed).expect("3 backends");
        assert!(d.p_value < 0.001 && d.min_share_of_fair < 0.5);
    }

    #[test]
    fn nearest_rank_percentiles_are_observed_samples() {
        let p = percentiles(&[1.0, 2.0, 3.0, 4.0, 100.0]).expect("samples");
        assert_eq!((p.p50, p.max), (3.0, 100.0));
        assert!(percentiles(&[]).is_none());
    }

    fn counts(values: &[u64]) -> BTreeMap<String, u64> {
        values.iter().enumerate().map(|(i, &c)| (format!("backend-{i}"), c)).collect()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn slightly_uneven_split_matches_hand_computation() {
        let d = evenness(&counts(&[108, 107, 85])).expect("three backends");
        // Expected 100 each: (64 + 49 + 225) / 100; for 2 df the survival function is exp(-x/2).
        assert!(close(d.chi_square, 3.38, 1e-12), "chi2 {}", d.chi_square);
        assert_eq!(d.degrees_of_freedom, 2);
        assert!(close(d.p_value, (-3.38f64 / 2.0).exp(), 1e-9), "p {}", d.p_value);
        assert!(close(d.p_value, 0.1845, 1e-4));
        assert_eq!(d.total, 300);
        assert!(close(d.min_share_of_fair, 0.85, 1e-12));
    }

    #[test]
    fn even_split_has_p_value_one() {
        let d = evenness(&counts(&[100, 100, 100, 100])).expect("four backends");
        assert_eq!(d.chi_square, 0.0);
        assert_eq!(d.degrees_of_freedom, 3);
        assert!(close(d.p_value, 1.0, 1e-12), "p {}", d.p_value);
        assert_eq!(d.min_share_of_fair, 1.0);
    }

    #[test]
    fn heavily_skewed_split_has_tiny_p_value() {
        let d = evenness(&counts(&[290, 5, 5])).expect("three backends");
        assert!(close(d.chi_square, 541.5, 1e-9), "chi2 {}", d.chi_square);
        assert!(d.p_value < 1e-10, "p {}", d.p_value);
        assert!(close(d.min_share_of_fair, 0.05, 1e-12));
    }

    #[test]
    fn starved_backend_has_zero_share() {
        let d = evenness(&counts(&[150, 150, 0])).expect("three backends");
        assert_eq!(d.min_share_of_fair, 0.0);
        assert!(d.p_value < 1e-10);
    }

    #[test]
    fn one_degree_of_freedom_matches_known_critical_value() {
        // 3.841 is the 5% critical value of chi-square with 1 df; 60/40 of 100 gives chi2 = 4.
        let d = evenness(&counts(&[60, 40])).expect("two backends");
        assert!(close(d.chi_square, 4.0, 1e-12));
        assert!(close(d.p_value, 0.0455, 1e-4), "p {}", d.p_value);
    }

    #[test]
    fn evenness_needs_two_backends_and_some_requests() {
        assert_eq!(evenness(&counts(&[])), None);
        assert_eq!(evenness(&counts(&[42])), None);
        assert_eq!(evenness(&counts(&[0, 0])), None);
    }

    #[test]
    fn percentiles_of_one_to_hundred() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&samples).expect("samples");
        assert_eq!(p, Percentiles { p50: 50.0, p90: 90.0, p99: 99.0, max: 100.0 });
    }

    #[test]
    fn percentiles_of_few_samples_use_nearest_rank() {
        // n = 5: ranks ⌈2.5⌉ = 3, ⌈4.5⌉ = 5, ⌈4.95⌉ = 5.
        let p = percentiles(&[7.0, 1.0, 3.0, 9.0, 5.0]).expect("samples");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (5.0, 9.0, 9.0, 9.0));
    }

    #[test]
    fn percentiles_of_single_sample_and_nan() {
        let p = percentiles(&[f64::NAN, 2.5]).expect("one usable sample");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (2.5, 2.5, 2.5, 2.5));
        assert_eq!(percentiles(&[]), None);
        assert_eq!(percentiles(&[f64::NAN]), None);
    }
}
