//! The byte counters match the traffic model of the locality plan: remote
//! bytes are what crosses packs, nothing more.

use std::sync::Arc;

use burst_host::PackLayout;
use burst_host::comm::{Kind, plan};
use serde_json::json;

use crate::support::{microbench, outputs, run};

async fn remote_bytes(primitive: &str, n: u32, g: u32, root: u32, size: u64) -> u64 {
    let input = json!({ "primitive": primitive, "size": size, "root": root, "iterations": 1 });
    let result = run(microbench(), n, g, &input).await;
    outputs(&result);
    result.bytes.remote
}

#[tokio::test]
async fn broadcast_crosses_once_per_other_pack() {
    let b = 40_000;
    for g in [1, 2, 4, 8] {
        assert_eq!(remote_bytes("broadcast", 8, g, 3, b).await, b * (8 / u64::from(g) - 1), "G={g}");
    }
}

#[tokio::test]
async fn all_to_all_sends_only_the_parts_for_other_packs() {
    let b = 3_000;
    for g in [1, 2, 4, 8] {
        assert_eq!(remote_bytes("all-to-all", 8, g, 0, b).await, b * 8 * (8 - u64::from(g)), "G={g}");
    }
}

#[tokio::test]
async fn every_collective_matches_the_model() {
    let cases = [
        ("broadcast", Kind::Broadcast),
        ("scatter", Kind::Scatter),
        ("gather", Kind::Gather),
        ("all-gather", Kind::AllGather),
        ("all-to-all", Kind::AllToAll),
        ("reduce", Kind::Reduce),
        ("all-reduce", Kind::AllReduce),
    ];
    let size = 2_048;
    for (n, g, root) in [(8, 3, 7), (17, 4, 16), (6, 2, 1)] {
        let layout = Arc::new(PackLayout::homogeneous(n, g).expect("valid"));
        for (primitive, kind) in cases {
            let expected = plan::remote_bytes(kind, &layout, root, size);
            assert_eq!(remote_bytes(primitive, n, g, root, size).await, expected, "{primitive} N={n} G={g}");
        }
    }
}

#[tokio::test]
async fn one_pack_moves_nothing_remote() {
    assert_eq!(remote_bytes("all-to-all", 8, 8, 0, 1000).await, 0);
}
