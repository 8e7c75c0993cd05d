//! The compute kernel (see `burst_guest_sdk::kernel`): power iterations
//! over a generated graph held by one worker, the same functions a flare's
//! workers run between their reduce and broadcast.

use burst_guest_sdk::kernel::{Report, measure};
use serde::Deserialize;

use crate::graph::{self, Adjacency};
use crate::{DEFAULT_DAMPING, MAX_ITERATIONS, generate, rank};

/// The `kernel` input (built from JSON on either side, so that both
/// builds are given the same).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The graph.
    generate: generate::Spec,
    /// Power iterations, all run (no tolerance).
    iterations: u32,
}

/// Runs `spec.iterations` power iterations; the digest is of the ranks.
pub fn run(spec: Spec) -> Result<Report, String> {
    spec.generate.validate()?;
    if !(1..=MAX_ITERATIONS).contains(&spec.iterations) {
        return Err(format!("kernel.iterations must be in 1..={MAX_ITERATIONS}, got {}", spec.iterations));
    }
    // `validate` kept `nodes` within MAX_NODES.
    let nodes = spec.generate.nodes as u32;
    let adjacency = Adjacency::new(graph::owned(0, 1, nodes), spec.generate.edges(0, 1))?;
    measure(|| {
        let mut ranks = vec![1.0 / f64::from(nodes); nodes as usize];
        for _ in 0..spec.iterations {
            let sums = adjacency.contributions(&ranks);
            (ranks, _) = rank::update(&sums, &ranks, DEFAULT_DAMPING);
        }
        Ok(ranks.into_iter().map(f64::to_bits))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u64, iterations: u32) -> Spec {
        Spec { generate: generate::Spec { nodes, edges_per_node: 4.0, seed: 1 }, iterations }
    }

    #[test]
    fn the_kernel_digests_the_ranks_and_checks_its_input() {
        let once = run(spec(500, 5)).expect("runs");
        assert_eq!(once.digest, run(spec(500, 5)).expect("runs").digest);
        assert_ne!(once.digest, run(spec(500, 6)).expect("runs").digest);
        let error = run(spec(500, 0)).expect_err("no iterations");
        assert_eq!(error, format!("kernel.iterations must be in 1..={MAX_ITERATIONS}, got 0"));
        assert!(run(spec(0, 1)).expect_err("no nodes").starts_with("generate.nodes must be in"));
    }
}
