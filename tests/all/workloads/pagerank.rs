//! `pagerank`: checked against an independent computation.
//!
//! The test writes its own graphs (its own generator, not the guest's) into
//! a temp dir seen as `/data`, or reads the sample file with its own
//! parser, and runs a plain power iteration of its own: the guest's ranks
//! must match it within 1e-9 in L1 and sum to 1 within 1e-12, at several
//! burst sizes and granularities, in memory and through Redis; duplicate
//! edges, comments and dangling nodes count as the spec says; a bad line
//! fails the flare naming the file and the line.

use std::collections::BTreeSet;
use std::path::Path;

use burst_host::comm::BrokerKind;
use burst_host::{FailureKind, FlareResult};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, Stream, workload};
use crate::support::outputs;

const DAMPING: f64 = 0.85;
/// Both iterations stop this close to the fixed point, well inside 1e-9.
const TOLERANCE: f64 = 1e-12;
const MAX_ITERATIONS: u32 = 500;
/// Nodes of the generated graph.
const NODES: u32 = 12_000;
/// Phases every worker times.
const PHASES: [&str; 3] = ["iterate", "read", "shuffle"];

/// A graph file: one node in five dangling, skewed out-degrees, edges in
/// shuffled order, some written twice, comments and blank lines between.
/// Returns the text, the distinct edges and the lines that hold an edge.
fn generated_graph(seed: u64, nodes: u32) -> (String, BTreeSet<(u32, u32)>, u64) {
    let mut rng = Stream(seed);
    let mut lines = Vec::new();
    for u in 0..nodes - 1 {
        if rng.below(5) == 0 {
            continue;
        }
        let degree = if rng.below(50) == 0 { 50 + rng.below(200) } else { 1 + rng.below(8) };
        for _ in 0..degree {
            // Targets lean to low ids, so in-degrees are skewed too.
            let v = rng.below(u64::from(nodes)).min(rng.below(u64::from(nodes))) as u32;
            lines.push((u, v));
            if rng.below(20) == 0 {
                lines.push((u, v));
            }
        }
    }
    // The last node is dangling but named as a target, so the node count
    // is `nodes`.
    lines.push((0, nodes - 1));
    for i in (1..lines.len()).rev() {
        lines.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut text = String::from("# FromNodeId\tToNodeId\n");
    for (i, (u, v)) in lines.iter().enumerate() {
        let gap = if i % 3 == 0 { "\t" } else { " " };
        text.push_str(&format!("{u}{gap}{v}\n"));
        match i % 997 {
            0 => text.push_str("# a comment between edges\n"),
            1 => text.push('\n'),
            _ => {}
        }
    }
    let edges: BTreeSet<_> = lines.iter().copied().collect();
    assert!(edges.len() < lines.len(), "some edges are written twice");
    (text, edges, lines.len() as u64)
}

/// The distinct edges of a SNAP edge list, parsed by the test.
fn parse(text: &str) -> BTreeSet<(u32, u32)> {
    let mut edges = BTreeSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            [u, v] => {
                edges.insert((u.parse().expect("node id"), v.parse().expect("node id")));
            }
            _ => panic!("not an edge: {line:?}"),
        }
    }
    edges
}

/// Plain power iteration from the uniform vector until the L1 change is
/// below [`TOLERANCE`]: the ranks and the iterations it took.
fn power_iteration(nodes: usize, edges: &BTreeSet<(u32, u32)>) -> (Vec<f64>, u32) {
    let mut degree = vec![0usize; nodes];
    for &(u, _) in edges {
        degree[u as usize] += 1;
    }
    let mut ranks = vec![1.0 / nodes as f64; nodes];
    for iteration in 1..=MAX_ITERATIONS {
        let dangling: f64 = (0..nodes).filter(|&u| degree[u] == 0).map(|u| ranks[u]).sum();
        let mut next = vec![(1.0 - DAMPING) / nodes as f64 + DAMPING * dangling / nodes as f64; nodes];
        for &(u, v) in edges {
            next[v as usize] += DAMPING * ranks[u as usize] / degree[u as usize] as f64;
        }
        let change: f64 = next.iter().zip(&ranks).map(|(a, b)| (a - b).abs()).sum();
        ranks = next;
        if change < TOLERANCE {
            return (ranks, iteration);
        }
    }
    panic!("the test's iteration did not converge");
}

fn dangling(nodes: usize, edges: &BTreeSet<(u32, u32)>) -> u64 {
    let sources: BTreeSet<u32> = edges.iter().map(|&(u, _)| u).collect();
    (nodes - sources.len()) as u64
}

fn input(graph: &str, return_ranks: bool) -> Value {
    json!({
        "graph": graph,
        "damping": DAMPING,
        "tolerance": TOLERANCE,
        "max_iterations": MAX_ITERATIONS,
        "return_ranks": return_ranks,
    })
}

fn ranks_of(output: &Value) -> Vec<f64> {
    let ranks = output["ranks"].as_array().expect("ranks");
    ranks.iter().map(|r| r.as_f64().expect("a number")).collect()
}

fn l1(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// Checks worker 0's summary against the test's graph and ranks, and every
/// worker's report; returns the outputs.
fn check(
    result: &FlareResult,
    what: &str,
    edges: &BTreeSet<(u32, u32)>,
    expected: &[f64],
    iterations: u32,
) -> Vec<Value> {
    let outputs = outputs(result);
    let summary = &outputs[0];
    let nodes = expected.len();
    assert_eq!(summary["nodes"], nodes, "{what}");
    assert_eq!(summary["edges"], edges.len(), "{what}");
    assert_eq!(summary["dangling"], dangling(nodes, edges), "{what}");
    assert_eq!(summary["converged"], true, "{what}");
    assert!(summary["l1_change"].as_f64().expect("l1_change") < TOLERANCE, "{what}: {}", summary["l1_change"]);
    let ran = summary["iterations"].as_u64().expect("iterations");
    assert!(ran.abs_diff(iterations.into()) <= 1, "{what}: {ran} iterations, the test took {iterations}");
    let ranks = ranks_of(summary);
    assert!(l1(&ranks, expected) < 1e-9, "{what}: L1 distance {}", l1(&ranks, expected));
    assert!((ranks.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{what}: sum {}", ranks.iter().sum::<f64>());
    let mut owned = 0;
    for (id, output) in outputs.iter().enumerate() {
        assert_eq!(output["worker"], id, "{what}");
        let phases: Vec<&String> = output["seconds"].as_object().expect("seconds").keys().collect();
        assert_eq!(phases, PHASES, "{what}");
        owned += output["edges_owned"].as_u64().expect("edges_owned");
        if id > 0 {
            assert!(output.get("ranks").is_none() && output.get("nodes").is_none(), "{what}: worker {id}");
        }
    }
    assert_eq!(owned, edges.len() as u64, "{what}: every distinct edge is owned once");
    outputs
}

#[tokio::test]
async fn ranks_of_a_generated_graph_match_a_plain_power_iteration() {
    let (text, edges, lines) = generated_graph(0x9E37_79B9, NODES);
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("graph.txt"), &text).expect("write");
    let (expected, iterations) = power_iteration(NODES as usize, &edges);
    assert!(dangling(NODES as usize, &edges) > u64::from(NODES) / 10, "the graph has dangling nodes");
    let size = text.len() as u64;
    let layouts = [(1, 1, None), (6, 4, None), (7, 3, None), (4, 2, Some(BrokerKind::Redis))];
    for (workers, granularity, broker) in layouts {
        let what = format!("{workers} workers in packs of {granularity}, {broker:?}");
        let mut run = Run::new(workers, granularity);
        run.broker = broker;
        run.data = Some(dir.path());
        let result = run.flare(workload("pagerank"), &input("/data/graph.txt", true)).await;
        let outputs = check(&result, &what, &edges, &expected, iterations);
        let bytes: Vec<u64> = outputs.iter().map(|o| o["bytes_read"].as_u64().expect("bytes_read")).collect();
        assert!(bytes.iter().sum::<u64>() >= size, "{what}: the file is read whole: {bytes:?} of {size}");
        if workers > 1 {
            assert!(
                bytes.iter().all(|&b| b < size / 2),
                "{what}: no worker reads the whole graph: {bytes:?} of {size}"
            );
        }
        let read: u64 = outputs.iter().map(|o| o["edges_read"].as_u64().expect("edges_read")).sum();
        assert_eq!(read, lines, "{what}: every edge line is read by one worker");
    }
}

#[tokio::test]
async fn duplicates_comments_and_dangling_nodes_count_as_the_spec_says() {
    // Nodes 0..=7; 3 has no out-edges and 4, 5, 6 appear nowhere: four
    // dangling nodes; 4..=7 have no in-edges, so their ranks tie.
    let text = "# a small graph\n0 1\n0 1\n0\t2\n\n1 2\n   # an indented comment\n2 0\r\n2 3\n7 3\n1 2\n0 2";
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("small.txt"), text).expect("write");
    let edges: BTreeSet<(u32, u32)> = [(0, 1), (0, 2), (1, 2), (2, 0), (2, 3), (7, 3)].into();
    assert_eq!(parse(text), edges);
    let (expected, iterations) = power_iteration(8, &edges);
    assert_eq!(dangling(8, &edges), 4);
    for (workers, granularity) in [(1, 1), (6, 4), (7, 3)] {
        let what = format!("{workers} workers in packs of {granularity}");
        let mut run = Run::new(workers, granularity);
        run.data = Some(dir.path());
        let result = run.flare(workload("pagerank"), &input("/data/small.txt", true)).await;
        let ranks = ranks_of(&check(&result, &what, &edges, &expected, iterations)[0]);
        assert!(l1(&ranks, &expected) < 1e-12, "{what}");

        // Without the ranks: the top, highest first, ties by lower id.
        let result = run.flare(workload("pagerank"), &input("/data/small.txt", false)).await;
        let summary = &outputs(&result)[0];
        assert!(summary.get("ranks").is_none(), "{what}");
        let top = summary["top"].as_array().expect("top");
        let mut order: Vec<usize> = (0..8).collect();
        order.sort_by(|&a, &b| expected[b].total_cmp(&expected[a]).then(a.cmp(&b)));
        let ids: Vec<u64> = top.iter().map(|pair| pair[0].as_u64().expect("node")).collect();
        assert_eq!(ids, order.iter().map(|&i| i as u64).collect::<Vec<_>>(), "{what}");
        assert_eq!(&ids[4..], [4, 5, 6, 7], "{what}: the tied nodes by id");
        for pair in top {
            let node = pair[0].as_u64().expect("node") as usize;
            assert!((pair[1].as_f64().expect("rank") - expected[node]).abs() < 1e-12, "{what}: node {node}");
        }
    }
}

#[tokio::test]
async fn the_sample_file_gives_the_ranks_of_the_generator_it_came_from() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pagerank/data");
    let text = std::fs::read_to_string(data.join("sample.txt")).expect("the sample exists");
    let edges = parse(&text);
    let nodes = edges.iter().map(|&(u, v)| u.max(v)).max().expect("edges") as usize + 1;
    assert_eq!(nodes, 2000);
    let (expected, iterations) = power_iteration(nodes, &edges);
    let mut run = Run::new(6, 4);
    run.data = Some(&data);
    let result = run.flare(workload("pagerank"), &input("/data/sample.txt", true)).await;
    let from_file = ranks_of(&check(&result, "the sample", &edges, &expected, iterations)[0]);

    // Its header names the generator's input: generated in the workers, the
    // graph (and so every rank) is the same.
    let mut generate = input("unused", true);
    generate.as_object_mut().expect("object").remove("graph");
    generate["generate"] = json!({ "nodes": 2000, "edges_per_node": 6, "seed": 1 });
    for (workers, granularity) in [(1, 1), (7, 3)] {
        let result = Run::new(workers, granularity).flare(workload("pagerank"), &generate).await;
        let what = format!("generated on {workers} workers in packs of {granularity}");
        let outputs = check(&result, &what, &edges, &expected, iterations);
        assert!(l1(&ranks_of(&outputs[0]), &from_file) < 1e-12, "{what}");
        assert!(outputs.iter().all(|o| o["bytes_read"] == 0), "{what}: nothing is read");
    }
}

#[tokio::test]
async fn bad_input_fails_the_flare_naming_the_file_and_line() {
    let mut text = String::from("# edges, then a bad line, then a worse one\n");
    for i in 0..400 {
        text.push_str(&format!("{i} {}\n", (i * 7) % 400));
    }
    text.push_str("3 x\n");
    text.push_str(&"5 6\n".repeat(100));
    text.push_str("oops\n");
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("bad.txt"), &text).expect("write");
    let cases = [
        (
            input("/data/bad.txt", false),
            "/data/bad.txt line 402: target \"x\" is not a node id (a non-negative integer)",
        ),
        (json!({ "graph": "/data/bad.txt", "damping": 1.5 }), "damping must be in 0..=1, got 1.5"),
        (json!({ "generate": { "nodes": 0, "edges_per_node": 2 } }), "generate.nodes must be in 1..=16777216, got 0"),
    ];
    for (input, message) in cases {
        let mut run = Run::new(4, 2);
        run.data = Some(dir.path());
        let result = run.flare(workload("pagerank"), &input).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.kind, failure.message.as_str()), (FailureKind::GuestError, message), "{input}");
    }
    let mut run = Run::new(3, 2);
    run.data = Some(dir.path());
    let result = run.flare(workload("pagerank"), &input("/data/missing.txt", false)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert!(failure.message.starts_with("could not read the graph /data/missing.txt: "), "{failure}");
}
