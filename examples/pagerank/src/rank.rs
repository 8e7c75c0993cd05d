//! The arithmetic of one power iteration, and the rank vector's wire form.
//!
//! `r'_v = (1 − d)/N + d·(Σ_{u→v} r_u/outdeg(u) + Σ_{dangling u} r_u/N)`:
//! the workers compute the sums of their own sources
//! ([`Adjacency::contributions`](crate::graph::Adjacency::contributions)),
//! the reduction adds them up, and [`update`] makes the next ranks.

/// Bytes of one rank on the wire.
const RANK_BYTES: usize = 8;

/// The next ranks from the summed contributions (one entry per node, then
/// the dangling ranks' sum) and the current ranks, with the L1 change.
pub fn update(sums: &[f64], ranks: &[f64], damping: f64) -> (Vec<f64>, f64) {
    let nodes = ranks.len() as f64;
    let dangling = sums.get(ranks.len()).copied().unwrap_or(0.0);
    // Every node gets the same teleport and dangling share.
    let base = (1.0 - damping) / nodes + damping * dangling / nodes;
    let mut l1 = 0.0;
    let next = sums
        .iter()
        .zip(ranks)
        .map(|(sum, old)| {
            let new = base + damping * sum;
            l1 += (new - old).abs();
            new
        })
        .collect();
    (next, l1)
}

/// The `count` highest `(node, rank)` pairs, highest first, ties by lower
/// node id.
pub fn top(ranks: &[f64], count: usize) -> Vec<(u32, f64)> {
    let order = |a: &u32, b: &u32| ranks[*b as usize].total_cmp(&ranks[*a as usize]).then(a.cmp(b));
    let mut nodes: Vec<u32> = (0..ranks.len() as u32).collect();
    if nodes.len() > count && count > 0 {
        // Only the first `count` need sorting.
        nodes.select_nth_unstable_by(count - 1, order);
    }
    nodes.truncate(count);
    nodes.sort_unstable_by(order);
    nodes.into_iter().map(|node| (node, ranks[node as usize])).collect()
}

/// The ranks and the L1 change as worker 0 broadcasts them: little-endian
/// `f64`s, the change last.
pub fn encode(ranks: &[f64], l1: f64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((ranks.len() + 1) * RANK_BYTES);
    for value in ranks.iter().chain([&l1]) {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Decodes what [`encode`] made for a graph of `nodes` nodes.
pub fn decode(bytes: &[u8], nodes: usize) -> Result<(Vec<f64>, f64), String> {
    if bytes.len() != (nodes + 1) * RANK_BYTES {
        return Err(format!(
            "the rank broadcast has {} bytes; {nodes} nodes need {}",
            bytes.len(),
            (nodes + 1) * RANK_BYTES
        ));
    }
    let mut values: Vec<f64> = bytes
        .chunks_exact(RANK_BYTES)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    let l1 = values.pop().unwrap_or(f64::NAN);
    Ok((values, l1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_follows_the_definition() {
        // Ranks of 4 nodes; contributions of 0.5 to node 1, 0.25 to node 2,
        // and a dangling mass of 0.25.
        let ranks = [0.25; 4];
        let (next, l1) = update(&[0.0, 0.5, 0.25, 0.0, 0.25], &ranks, 0.8);
        // (1 − 0.8)/4 + 0.8·0.25/4 = 0.1 for everyone, plus 0.8 × the contributions.
        for (got, want) in next.iter().zip([0.1, 0.5, 0.3, 0.1]) {
            assert!((got - want).abs() < 1e-15, "{next:?}");
        }
        assert!((next.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let expected: f64 = next.iter().map(|r| (r - 0.25).abs()).sum();
        assert!((l1 - expected).abs() < 1e-15, "{l1} vs {expected}");
    }

    #[test]
    fn the_top_breaks_ties_by_lower_id() {
        let ranks = [0.1, 0.3, 0.1, 0.3, 0.2];
        assert_eq!(top(&ranks, 3), [(1, 0.3), (3, 0.3), (4, 0.2)]);
        assert_eq!(top(&ranks, 20), [(1, 0.3), (3, 0.3), (4, 0.2), (0, 0.1), (2, 0.1)]);
        assert_eq!(top(&ranks, 0), []);
    }

    #[test]
    fn ranks_survive_the_wire() {
        let ranks = [0.5, 1e-300, 0.25];
        assert_eq!(decode(&encode(&ranks, 3e-9), 3), Ok((ranks.to_vec(), 3e-9)));
        assert!(decode(&encode(&ranks, 0.0), 2).is_err());
    }
}
