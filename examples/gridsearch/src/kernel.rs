//! The compute kernel (see `burst_guest_sdk::kernel`): the whole grid
//! scored by one worker on a generated data set, with the functions a
//! flare's workers run on their shares.

use burst_guest_sdk::kernel::{Report, measure};
use serde::Deserialize;

use crate::data::{self, Generate};
use crate::{Input, Timings, check, score};

/// The `kernel` input (built from JSON on either side, so that both
/// builds are given the same).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    generate: Generate,
    alphas: Vec<f64>,
    folds: usize,
}

/// Scores every alpha; the digest is of the scores.
pub fn run(spec: Spec) -> Result<Report, String> {
    let input = Input { data: None, generate: Some(spec.generate), alphas: spec.alphas, folds: spec.folds };
    let (_, alphas, folds) = check(input)?;
    let data = data::generate(&spec.generate)?;
    measure(|| Ok(score(&data, &alphas, 0, folds, &mut Timings::default())?.into_iter().map(f64::to_bits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(alphas: Vec<f64>, folds: usize) -> Spec {
        Spec { generate: Generate { rows: 300, features: 4, noise: 0.5, seed: 3 }, alphas, folds }
    }

    #[test]
    fn the_kernel_digests_the_scores_and_checks_its_input() {
        let once = run(spec(vec![0.1, 1.0], 5)).expect("runs");
        assert_eq!(once.digest, run(spec(vec![0.1, 1.0], 5)).expect("runs").digest);
        assert_ne!(once.digest, run(spec(vec![0.1, 2.0], 5)).expect("runs").digest);
        assert_eq!(run(spec(vec![], 5)).expect_err("no alphas"), "alphas: empty; give at least one");
        assert_eq!(run(spec(vec![1.0], 1)).expect_err("one fold"), "folds: 1; need at least 2");
    }
}
