//! Repeated measurements: median and spread, and empirical distributions.

use serde::Serialize;

/// A point measured several times.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// The median (the upper one of an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Every value, in the order measured.
    pub values: Vec<f64>,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: Vec<f64>) -> Option<Self> {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        Some(Self { median: *sorted.get(sorted.len() / 2)?, min: *sorted.first()?, max: *sorted.last()?, values })
    }

    /// `median (min–max)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!("{:.digits$} ({:.digits$}–{:.digits$})", self.median, self.min, self.max)
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted `values`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The empirical CDF of `values` as (value, share ≤ value), at most
/// `points` points (evenly spaced in rank).
pub fn cdf(values: &[f64], points: usize) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 || points == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(points).max(1);
    let mut curve: Vec<(f64, f64)> =
        (step - 1..n).step_by(step).map(|i| (sorted[i], (i + 1) as f64 / n as f64)).collect();
    if curve.last().is_none_or(|&(_, share)| share < 1.0) {
        curve.push((sorted[n - 1], 1.0));
    }
    curve
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_its_median_and_extremes() {
        let spread = Spread::of(vec![3.0, 1.0, 2.0, 10.0]).expect("values");
        assert_eq!((spread.median, spread.min, spread.max), (3.0, 1.0, 10.0));
        assert_eq!(spread.values, [3.0, 1.0, 2.0, 10.0]);
        assert_eq!(spread.show(1), "3.0 (1.0–10.0)");
        assert_eq!(Spread::of(Vec::new()), None);
    }

    #[test]
    fn quantiles_and_cdfs_use_nearest_ranks() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!([quantile(&values, 0.0), quantile(&values, 0.5), quantile(&values, 0.99)], [1.0, 5.0, 10.0]);
        assert_eq!(cdf(&[2.0, 1.0, 4.0, 3.0], 2), [(2.0, 0.5), (4.0, 1.0)]);
        assert_eq!(cdf(&values, 3), [(4.0, 0.4), (8.0, 0.8), (10.0, 1.0)]);
        assert!(cdf(&[], 5).is_empty());
    }
}
