//! Every primitive, through the `microbench` guest (which checks every byte
//! it receives against a pattern derived from sender, receiver and size),
//! over burst sizes, granularities that do and do not divide them, roots
//! other than 0, empty messages and messages above 8 MiB.

use serde_json::json;

use crate::support::{microbench, outputs, run};

const PRIMITIVES: [&str; 9] =
    ["pair", "broadcast", "scatter", "gather", "all-gather", "all-to-all", "reduce", "all-reduce", "barrier"];

/// (burst size, granularities): divisors and non-divisors.
const LAYOUTS: [(u32, &[u32]); 5] = [(1, &[1]), (2, &[1, 2]), (3, &[1, 2, 3]), (8, &[1, 3, 4, 8]), (17, &[1, 4, 17])];

/// Bytes worker `me` must have checked.
fn expected_checked(primitive: &str, me: u32, n: u32, root: u32, size: u64) -> u64 {
    let n = u64::from(n);
    match primitive {
        "pair" if me == 1 => size,
        "broadcast" | "scatter" => size,
        "gather" if me == root => n * size,
        "all-gather" | "all-to-all" => n * size,
        "reduce" if me == root => size / 8 * 8,
        "all-reduce" => size / 8 * 8,
        _ => 0,
    }
}

async fn check(primitive: &str, n: u32, g: u32, root: u32, size: u64) {
    let input = json!({ "primitive": primitive, "size": size, "root": root, "iterations": 2 });
    let result = run(microbench(), n, g, &input).await;
    let outputs = outputs(&result);
    assert_eq!(outputs.len(), n as usize);
    for (me, output) in (0..).zip(&outputs) {
        assert_eq!(output["worker_id"], me);
        let checked = output["checked_bytes"].as_u64().expect("checked_bytes");
        assert_eq!(
            checked,
            2 * expected_checked(primitive, me, n, root, size),
            "{primitive} N={n} G={g} root={root} size={size}: worker {me}"
        );
        assert_eq!(output["elapsed_us"].as_array().expect("timings").len(), 2);
    }
}

async fn every_layout(primitive: &str) {
    for (n, granularities) in LAYOUTS {
        if primitive == "pair" && n < 2 {
            continue;
        }
        for &g in granularities {
            for root in [n - 1, n / 2] {
                for size in [0, 1000] {
                    check(primitive, n, g, root, size).await;
                }
            }
        }
    }
}

#[tokio::test]
async fn pair() {
    every_layout("pair").await;
}

#[tokio::test]
async fn broadcast() {
    every_layout("broadcast").await;
}

#[tokio::test]
async fn scatter() {
    every_layout("scatter").await;
}

#[tokio::test]
async fn gather() {
    every_layout("gather").await;
}

#[tokio::test]
async fn all_gather() {
    every_layout("all-gather").await;
}

#[tokio::test]
async fn all_to_all() {
    every_layout("all-to-all").await;
}

#[tokio::test]
async fn reduce() {
    every_layout("reduce").await;
}

#[tokio::test]
async fn all_reduce() {
    every_layout("all-reduce").await;
}

#[tokio::test]
async fn barrier() {
    every_layout("barrier").await;
}

#[tokio::test]
async fn messages_above_8_mib_arrive_byte_for_byte() {
    let size = (8 << 20) + 13;
    for primitive in PRIMITIVES.iter().filter(|p| **p != "barrier") {
        check(primitive, 3, 2, 2, size).await;
    }
    check("pair", 2, 1, 0, size).await;
}
