//! The compute kernel (see `burst_guest_sdk::kernel`): Lloyd steps over
//! generated points held by one worker, the same functions a flare's
//! workers run around their all-reduce.

use burst_guest_sdk::kernel::{Report, measure};
use serde::Deserialize;

use crate::{MAX_ITERATIONS, MAX_K, generate, lloyd};

/// The `kernel` input (built from JSON on either side, so that both
/// builds are given the same).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    generate: generate::Spec,
    k: u32,
    /// Lloyd steps, all run (no tolerance).
    iterations: u32,
}

/// Runs `spec.iterations` Lloyd steps from the first `k` points; the
/// digest is of the centroids and the cluster sizes.
pub fn run(spec: Spec) -> Result<Report, String> {
    spec.generate.validate(1)?;
    if !(1..=MAX_K).contains(&spec.k) || u64::from(spec.k) > spec.generate.points {
        return Err(format!("kernel.k must be in 1..={MAX_K} and at most the points, got {}", spec.k));
    }
    if !(1..=MAX_ITERATIONS).contains(&spec.iterations) {
        return Err(format!("kernel.iterations must be in 1..={MAX_ITERATIONS}, got {}", spec.iterations));
    }
    let d = spec.generate.dimensions as usize;
    let points = spec.generate.points(spec.generate.share(0, 1));
    let initial = points[..spec.k as usize * d].to_vec();
    measure(|| {
        let mut step = lloyd::Step { centroids: initial, sizes: Vec::new(), movement: f64::INFINITY };
        for _ in 0..spec.iterations {
            step = lloyd::update(&lloyd::accumulate(&points, &step.centroids, d), &step.centroids, d);
        }
        Ok(step.centroids.into_iter().map(f64::to_bits).chain(step.sizes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(k: u32, iterations: u32) -> Spec {
        let generate = generate::Spec { points: 500, dimensions: 3, clusters: 4, seed: 2 };
        Spec { generate, k, iterations }
    }

    #[test]
    fn the_kernel_digests_the_centroids_and_checks_its_input() {
        let once = run(spec(4, 3)).expect("runs");
        assert_eq!(once.digest, run(spec(4, 3)).expect("runs").digest);
        assert_ne!(once.digest, run(spec(4, 4)).expect("runs").digest);
        let error = run(spec(501, 1)).expect_err("too many clusters");
        assert_eq!(error, format!("kernel.k must be in 1..={MAX_K} and at most the points, got 501"));
        let error = run(spec(4, 0)).expect_err("no iterations");
        assert_eq!(error, format!("kernel.iterations must be in 1..={MAX_ITERATIONS}, got 0"));
    }
}
