//! Ridge regression without intercept, solved exactly, scored by k-fold
//! cross-validation.
//!
//! For fold `f`, the training part's normal equations are
//! `(XᵀX − X_fᵀX_f + αI) w = Xᵀy − X_fᵀy_f`: the totals are computed once
//! ([`Moments::of`] over every row), each fold's own moments once per fold,
//! and then each alpha costs one Cholesky factorisation and one pass over
//! the fold's rows. The result of one alpha depends only on the data, the
//! alpha and the fold count, never on which worker computes it or with
//! which other alphas, so every layout of a flare gives the same bits.

use std::ops::Range;

use crate::data::Dataset;

/// A pivot of the Cholesky factorisation at or below this fraction of its
/// diagonal entry means the matrix is not (numerically) positive definite:
/// rounding leaves a singular matrix's pivot near `1e-16` of its diagonal
/// instead of exactly 0, and such a solve would be noise.
const PIVOT_TOLERANCE: f64 = 1e-10;

/// Part `index` of `0..total` cut into `parts` contiguous ranges whose sizes
/// differ by at most one, the first ones the larger.
pub fn even_range(total: usize, parts: usize, index: usize) -> Range<usize> {
    let (base, extra) = (total / parts, total % parts);
    let start = index * base + index.min(extra);
    start..start + base + usize::from(index < extra)
}

/// `XᵀX` (lower triangle, row-major `d × d`) and `Xᵀy` of some rows.
pub struct Moments {
    gram: Vec<f64>,
    cross: Vec<f64>,
}

impl Moments {
    /// The moments of `rows` of `data`.
    pub fn of(data: &Dataset, rows: Range<usize>) -> Self {
        let d = data.features;
        let mut moments = Self { gram: vec![0.0; d * d], cross: vec![0.0; d] };
        for i in rows {
            let (x, y) = (data.row(i), data.y[i]);
            for j in 0..d {
                let gram_row = &mut moments.gram[j * d..j * d + j + 1];
                for (g, &x_l) in gram_row.iter_mut().zip(x) {
                    *g += x[j] * x_l;
                }
                moments.cross[j] += x[j] * y;
            }
        }
        moments
    }
}

/// Why an alpha has no score.
#[derive(Debug, PartialEq)]
pub struct NotPositiveDefinite {
    /// Index of the alpha in `alphas`.
    pub alpha: usize,
    /// The fold, from 0.
    pub fold: usize,
}

/// Solves `(a + αI) w = b` for the lower triangle `a` of a symmetric
/// `d × d` matrix, by Cholesky into `l`; `None` when `a + αI` is not
/// positive definite.
fn solve(a: &[f64], alpha: f64, b: &[f64], l: &mut [f64]) -> Option<Vec<f64>> {
    let d = b.len();
    for j in 0..d {
        let diagonal = a[j * d + j] + alpha;
        let pivot = diagonal - (0..j).map(|k| l[j * d + k] * l[j * d + k]).sum::<f64>();
        if pivot.is_nan() || pivot <= PIVOT_TOLERANCE * diagonal {
            return None;
        }
        let l_jj = pivot.sqrt();
        l[j * d + j] = l_jj;
        for i in j + 1..d {
            let dot: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            l[i * d + j] = (a[i * d + j] - dot) / l_jj;
        }
    }
    // Forward (L z = b), then backward (Lᵀ w = z) substitution.
    let mut w = b.to_vec();
    for i in 0..d {
        let dot: f64 = l[i * d..i * d + i].iter().zip(&w[..i]).map(|(p, q)| p * q).sum();
        w[i] = (w[i] - dot) / l[i * d + i];
    }
    for i in (0..d).rev() {
        let dot: f64 = (i + 1..d).map(|k| l[k * d + i] * w[k]).sum();
        w[i] = (w[i] - dot) / l[i * d + i];
    }
    Some(w)
}

/// The mean over `folds` contiguous folds of the held-out mean squared
/// error, for each of `alphas`; `totals` are the moments of every row.
/// Errors name the first alpha (by index in `alphas`) and fold whose
/// matrix is not positive definite.
pub fn cross_validate(
    data: &Dataset,
    totals: &Moments,
    folds: usize,
    alphas: &[f64],
) -> Result<Vec<f64>, NotPositiveDefinite> {
    let d = data.features;
    let mut sums = vec![0.0; alphas.len()];
    let (mut train, mut l) = (vec![0.0; d * d], vec![0.0; d * d]);
    let mut cross = vec![0.0; d];
    // Folds outside, alphas inside: one fold's moments at a time, and each
    // alpha's sum still adds its folds in fold order.
    for fold in 0..folds {
        let rows = even_range(data.rows(), folds, fold);
        let own = Moments::of(data, rows.clone());
        for ((t, total), o) in train.iter_mut().zip(&totals.gram).zip(&own.gram) {
            *t = total - o;
        }
        for ((c, total), o) in cross.iter_mut().zip(&totals.cross).zip(&own.cross) {
            *c = total - o;
        }
        for (index, (&alpha, sum)) in alphas.iter().zip(&mut sums).enumerate() {
            let w = solve(&train, alpha, &cross, &mut l).ok_or(NotPositiveDefinite { alpha: index, fold })?;
            let squared: f64 = rows
                .clone()
                .map(|i| {
                    let residual = data.y[i] - data.row(i).iter().zip(&w).map(|(x, w)| x * w).sum::<f64>();
                    residual * residual
                })
                .sum();
            *sum += squared / rows.len() as f64;
        }
    }
    Ok(sums.into_iter().map(|sum| sum / folds as f64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_cover_in_order_the_first_ones_larger() {
        let sizes: Vec<usize> = (0..5).map(|i| even_range(23, 5, i).len()).collect();
        assert_eq!(sizes, [5, 5, 5, 4, 4]);
        for (total, parts) in [(23, 5), (3, 7), (0, 2), (10, 10)] {
            let ranges: Vec<Range<usize>> = (0..parts).map(|i| even_range(total, parts, i)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, total);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
        assert_eq!(even_range(3, 7, 5), 3..3);
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // [[4, 2], [2, 3]] w = [2, 1] → w = [0.5, 0]; with α = 1, [[5, 2], [2, 4]] w = [1.75, 1.5] → [0.25, 0.25].
        let a = [4.0, 0.0, 2.0, 3.0];
        let mut l = [0.0; 4];
        assert_eq!(solve(&a, 0.0, &[2.0, 1.0], &mut l), Some(vec![0.5, 0.0]));
        let w = solve(&a, 1.0, &[1.75, 1.5], &mut l).expect("positive definite");
        assert!((w[0] - 0.25).abs() < 1e-15 && (w[1] - 0.25).abs() < 1e-15, "{w:?}");
        // Singular, then not positive definite at all.
        assert_eq!(solve(&[1.0, 0.0, 1.0, 1.0], 0.0, &[1.0, 1.0], &mut l), None);
        assert_eq!(solve(&[0.0, 0.0, 0.0, 1.0], 0.0, &[1.0, 1.0], &mut l), None);
        assert!(solve(&[1.0, 0.0, 1.0, 1.0], 1e-3, &[1.0, 1.0], &mut l).is_some());
    }

    /// Rows `i` of `x = (i, i² mod 7, 1)`, `y = 2x₁ − x₂ + 0.5 + small wobble`.
    fn sample(rows: usize) -> Dataset {
        let mut data = Dataset { features: 3, x: Vec::new(), y: Vec::new() };
        for i in 0..rows {
            let (a, b) = (i as f64, ((i * i) % 7) as f64);
            data.x.extend([a, b, 1.0]);
            data.y.push(2.0 * a - b + 0.5 + if i % 2 == 0 { 0.01 } else { -0.01 });
        }
        data
    }

    #[test]
    fn an_almost_exact_fit_has_an_almost_zero_error() {
        let data = sample(40);
        let totals = Moments::of(&data, 0..40);
        let scores = cross_validate(&data, &totals, 4, &[0.0, 1e6]).expect("positive definite");
        assert!(scores[0] < 3e-4, "{scores:?}");
        assert!(scores[1] > 1.0, "a huge alpha shrinks the fit: {scores:?}");
    }

    #[test]
    fn a_score_does_not_depend_on_the_other_alphas() {
        let data = sample(37);
        let totals = Moments::of(&data, 0..37);
        let all = cross_validate(&data, &totals, 5, &[0.0, 0.1, 10.0]).expect("positive definite");
        let one = cross_validate(&data, &totals, 5, &[0.1]).expect("positive definite");
        assert_eq!(all[1].to_bits(), one[0].to_bits());
    }

    #[test]
    fn a_singular_matrix_names_the_alpha_and_the_fold() {
        // The third feature is twice the first: XᵀX is singular in every fold.
        let mut data = sample(20);
        for i in 0..20 {
            data.x[i * 3 + 2] = 2.0 * data.x[i * 3];
        }
        let totals = Moments::of(&data, 0..20);
        assert!(cross_validate(&data, &totals, 4, &[0.5]).is_ok());
        assert_eq!(cross_validate(&data, &totals, 4, &[0.5, 0.0]), Err(NotPositiveDefinite { alpha: 1, fold: 0 }));
    }
}
