//! The traffic model of the locality plan: how many payload bytes each
//! collective reads from the backend for a given layout.
//!
//! The collectives in [`super::WorkerComm`] implement this plan; tests and
//! benchmarks compare the measured remote bytes of a flare with these
//! numbers, which are the paper's model (broadcast `B × (P − 1)`,
//! homogeneous all-to-all `B × N × (N − G)`).

use super::Kind;
use crate::PackLayout;

/// Remote payload bytes of one call of `kind` where every worker contributes
/// `bytes` (per destination for scatter and all-to-all), rooted at `root`.
///
/// ```
/// use burst_host::{PackLayout, comm::{Kind, plan}};
/// let layout = PackLayout::homogeneous(8, 2).unwrap();
/// assert_eq!(plan::remote_bytes(Kind::Broadcast, &layout, 0, 100), 100 * 3);
/// assert_eq!(plan::remote_bytes(Kind::AllToAll, &layout, 0, 100), 100 * 8 * 6);
/// ```
pub fn remote_bytes(kind: Kind, layout: &PackLayout, root: u32, bytes: u64) -> u64 {
    let packs = u64::from(layout.pack_count());
    let burst = u64::from(layout.burst_size());
    let outside = |pack_id: u32| burst - u64::from(layout.pack(pack_id).count);
    match kind {
        // Every message of a pair in different packs crosses once.
        Kind::Direct => 0,
        Kind::Broadcast | Kind::Reduce => bytes * (packs - 1),
        Kind::AllReduce | Kind::Barrier => 2 * bytes * (packs - 1),
        Kind::Scatter | Kind::Gather => bytes * outside(layout.pack_of(root)),
        Kind::AllGather => bytes * burst * (packs - 1),
        Kind::AllToAll => (0..layout.pack_count()).map(|p| bytes * u64::from(layout.pack(p).count) * outside(p)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homogeneous_layouts_match_the_papers_model() {
        let b = 1000;
        for (n, g) in [(8, 1), (8, 2), (8, 4), (8, 8), (16, 4), (64, 16)] {
            let layout = PackLayout::homogeneous(n, g).expect("valid");
            let (n, g, p) = (u64::from(n), u64::from(g), u64::from(n / g));
            assert_eq!(remote_bytes(Kind::Broadcast, &layout, 3, b), b * (p - 1));
            assert_eq!(remote_bytes(Kind::AllToAll, &layout, 0, b), b * n * (n - g));
            assert_eq!(remote_bytes(Kind::Gather, &layout, 0, b), b * (n - g));
        }
    }

    #[test]
    fn uneven_packs_count_each_pack() {
        let layout = PackLayout::homogeneous(17, 4).expect("valid");
        // Packs of 4, 4, 4, 4, 1: each worker sends to the 13 (or 16) outside.
        assert_eq!(remote_bytes(Kind::AllToAll, &layout, 0, 1), 16 * 13 + 16);
        assert_eq!(remote_bytes(Kind::Scatter, &layout, 16, 1), 16);
        assert_eq!(remote_bytes(Kind::AllGather, &layout, 0, 1), 17 * 4);
    }
}
