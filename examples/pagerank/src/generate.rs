//! A deterministic power-law graph, for benchmarks without a file.
//!
//! The out-edges of source `u` come from a generator seeded by `(seed, u)`
//! alone, so the graph is the same whatever the burst size, and each worker
//! generates just the sources it owns. A share of the nodes is dangling;
//! the others get a Pareto (α = 2) out-degree; targets lean towards low ids
//! (`v = ⌊nodes·x²⌋` for uniform `x`), so in-degrees are skewed too.
//! Duplicate targets are dropped later, like duplicate edges of a file.

use serde::Deserialize;

use crate::graph::{MAX_NODES, owned};

/// One node in this many has no out-edges.
const DANGLING_ONE_IN: u64 = 8;
/// Largest out-degree of a generated node.
const MAX_DEGREE: u64 = 1 << 16;
/// Largest mean out-degree accepted: beyond it the edges outgrow a worker.
const MAX_EDGES_PER_NODE: f64 = 1024.0;

/// The `generate` input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Number of nodes.
    pub nodes: u64,
    /// Mean out-degree (about: duplicates are dropped).
    pub edges_per_node: f64,
    /// Seed of the graph.
    #[serde(default)]
    pub seed: u64,
}

impl Spec {
    /// Checks the spec; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > u64::from(MAX_NODES) {
            return Err(format!("generate.nodes must be in 1..={MAX_NODES}, got {}", self.nodes));
        }
        if !(0.0..=MAX_EDGES_PER_NODE).contains(&self.edges_per_node) {
            return Err(format!(
                "generate.edges_per_node must be in 0..={MAX_EDGES_PER_NODE}, got {}",
                self.edges_per_node
            ));
        }
        Ok(())
    }

    /// The edges of the sources `worker_id` owns among `burst_size`
    /// workers, as `(source, target)` pairs in source order.
    pub fn edges(&self, worker_id: u32, burst_size: u32) -> Vec<(u32, u32)> {
        // floor(Pareto(scale, 2)) has a mean of about 2·scale − ½; the
        // dangling share has none, so the others make up for it.
        let live_mean = self.edges_per_node * DANGLING_ONE_IN as f64 / (DANGLING_ONE_IN - 1) as f64;
        let scale = (live_mean + 0.5) / 2.0;
        let max_degree = MAX_DEGREE.min(self.nodes);
        let mut edges = Vec::new();
        let nodes = self.nodes as u32;
        for u in owned(worker_id, burst_size, nodes) {
            let mut rng = SplitMix64::new(mix(self.seed ^ mix(u64::from(u))));
            if self.edges_per_node == 0.0 || rng.next_u64().is_multiple_of(DANGLING_ONE_IN) {
                continue;
            }
            // 1 − x is in (0, 1]: never a division by zero.
            let pareto = scale / (1.0 - rng.next_f64()).sqrt();
            let degree = (pareto as u64).clamp(1, max_degree);
            for _ in 0..degree {
                let x = rng.next_f64();
                let v = ((self.nodes as f64 * x * x) as u64).min(self.nodes - 1) as u32;
                edges.push((u, v));
            }
        }
        edges
    }
}

/// The splitmix64 finalizer: a good 64-bit mix of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and plenty for
/// synthetic data.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::parse_line;

    fn spec(nodes: u64, edges_per_node: f64, seed: u64) -> Spec {
        Spec { nodes, edges_per_node, seed }
    }

    #[test]
    fn the_graph_is_the_same_whatever_the_burst_size() {
        let spec = spec(5_000, 4.0, 9);
        let whole = spec.edges(0, 1);
        for burst in [2, 6, 7] {
            let parts: Vec<_> = (0..burst).flat_map(|w| spec.edges(w, burst)).collect();
            assert_eq!(parts, whole, "{burst} workers");
        }
        assert_ne!(spec.edges(0, 1), self::spec(5_000, 4.0, 10).edges(0, 1), "the seed matters");
    }

    #[test]
    fn degrees_are_skewed_and_some_nodes_dangle() {
        let spec = spec(20_000, 5.0, 3);
        let edges = spec.edges(0, 1);
        let mut degrees = vec![0u64; 20_000];
        for &(u, v) in &edges {
            assert!(v < 20_000);
            degrees[u as usize] += 1;
        }
        let dangling = degrees.iter().filter(|&&d| d == 0).count();
        assert!((2_000..3_000).contains(&dangling), "{dangling} dangling of 20000 (about one in 8)");
        let mean = edges.len() as f64 / 20_000.0;
        assert!((4.0..6.0).contains(&mean), "mean out-degree {mean}");
        assert!(degrees.iter().max().is_some_and(|&d| d > 100), "a power law has hubs");
        assert!(self::spec(10, 0.0, 3).edges(0, 1).is_empty(), "no edges asked, none made");
    }

    #[test]
    fn specs_out_of_range_are_refused_naming_the_field() {
        assert_eq!(spec(0, 1.0, 0).validate(), Err("generate.nodes must be in 1..=16777216, got 0".into()));
        let refused = spec(10, 2000.0, 0).validate();
        assert_eq!(refused, Err("generate.edges_per_node must be in 0..=1024, got 2000".into()));
        assert_eq!(spec(10, f64::NAN, 0).validate().map_err(|e| e.contains("edges_per_node")), Err(true));
    }

    #[test]
    fn the_sample_file_is_the_generated_graph_its_header_names() {
        let text = include_str!("../data/sample.txt");
        let edges: Vec<(u32, u32)> =
            text.lines().filter_map(|line| parse_line(line.as_bytes()).expect("the sample parses")).collect();
        assert!(text.contains(r#"{"generate": {"nodes": 2000, "edges_per_node": 6, "seed": 1}}"#));
        assert_eq!(edges, spec(2000, 6.0, 1).edges(0, 1));
        // Node 1999 has out-edges: the file's node count is the generator's.
        assert!(edges.iter().any(|&(u, _)| u == 1999));
    }
}
