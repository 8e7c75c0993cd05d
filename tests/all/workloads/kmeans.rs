//! `kmeans`: checked against an independent computation.
//!
//! The test writes its own clustered points (its own generator, not the
//! guest's) as a CSV into a temp dir seen as `/data`, parses the text back
//! itself and runs a plain Lloyd iteration of its own: the guest's
//! centroids must match it within 1e-9, with the same iteration count and
//! cluster sizes, at several burst sizes and granularities, in memory and
//! through Redis. A hand-worked case empties a cluster (it keeps its
//! centroid) and breaks ties to the lower index; the sample file is the
//! guest's documented generator, reproduced here; bad input fails the
//! flare naming the file and the line.

use std::path::Path;

use burst_host::comm::BrokerKind;
use burst_host::{FailureKind, FlareResult};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, Stream, workload};
use crate::support::outputs;

/// Centroids of two runs, or of a run and the test's Lloyd, agree this closely.
const CLOSE: f64 = 1e-9;
const MAX_ITERATIONS: u32 = 100;
/// Phases every worker times (in name order, as a JSON object comes out).
const PHASES: [&str; 3] = ["assign", "read", "reduce"];

/// A CSV of `points` rows of `dimensions` around `clusters` random centres,
/// written with five decimals and a few spaces.
fn clustered_csv(seed: u64, points: usize, dimensions: usize, clusters: usize) -> String {
    let mut rng = Stream(seed);
    let centres: Vec<Vec<f64>> =
        (0..clusters).map(|_| (0..dimensions).map(|_| 16.0 * rng.unit() - 8.0).collect()).collect();
    let header: Vec<String> = (0..dimensions).map(|j| format!("c{j}")).collect();
    let mut text = header.join(",") + "\n";
    for i in 0..points {
        let centre = &centres[(rng.next() % clusters as u64) as usize];
        let cells: Vec<String> =
            centre.iter().map(|m| format!("{:.5}", m + 2.0 * (rng.unit() + rng.unit() + rng.unit() - 1.5))).collect();
        text += &cells.join(if i % 7 == 0 { ", " } else { "," });
        text.push('\n');
    }
    text
}

/// The rows of a CSV under a header line, parsed by the test.
fn parse(text: &str) -> Vec<Vec<f64>> {
    let rows = text.lines().skip(1);
    rows.map(|line| line.split(',').map(|cell| cell.trim().parse().expect("a number")).collect()).collect()
}

/// What a plain Lloyd iteration ends with.
#[derive(Debug)]
struct Lloyd {
    centroids: Vec<Vec<f64>>,
    sizes: Vec<u64>,
    iterations: u32,
}

/// Lloyd's algorithm from the first `k` points: nearest centroid by
/// Euclidean distance (the first of equals), means, an empty cluster keeps
/// its centroid; stops once no centroid moves more than `tolerance`.
fn lloyd(points: &[Vec<f64>], k: usize, tolerance: f64) -> Lloyd {
    let distance = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let mut centroids = points[..k].to_vec();
    for iteration in 1..=MAX_ITERATIONS {
        let mut members: Vec<Vec<&Vec<f64>>> = vec![Vec::new(); k];
        for point in points {
            let nearest =
                (0..k).min_by(|&a, &b| distance(point, &centroids[a]).total_cmp(&distance(point, &centroids[b])));
            members[nearest.expect("k ≥ 1")].push(point);
        }
        let next: Vec<Vec<f64>> = members
            .iter()
            .zip(&centroids)
            .map(|(group, old)| {
                if group.is_empty() {
                    return old.clone();
                }
                (0..old.len()).map(|j| group.iter().map(|p| p[j]).sum::<f64>() / group.len() as f64).collect()
            })
            .collect();
        let moved = next.iter().zip(&centroids).map(|(a, b)| distance(a, b)).fold(0.0, f64::max);
        centroids = next;
        if moved <= tolerance {
            let sizes = members.iter().map(|group| group.len() as u64).collect();
            return Lloyd { centroids, sizes, iterations: iteration };
        }
    }
    panic!("the test's Lloyd iteration did not converge");
}

fn input(points: &str, k: usize, tolerance: f64) -> Value {
    json!({ "points": points, "k": k, "tolerance": tolerance, "max_iterations": MAX_ITERATIONS })
}

fn centroids_of(summary: &Value) -> Vec<Vec<f64>> {
    let rows = summary["centroids"].as_array().expect("centroids");
    rows.iter()
        .map(|row| row.as_array().expect("a row").iter().map(|x| x.as_f64().expect("a number")).collect())
        .collect()
}

/// The largest coordinate difference between two sets of centroids.
fn distance(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    let pairs = a.iter().zip(b).flat_map(|(x, y)| {
        assert_eq!(x.len(), y.len());
        x.iter().zip(y).map(|(p, q)| (p - q).abs())
    });
    pairs.fold(0.0, f64::max)
}

/// Checks worker 0's summary against the test's Lloyd and every worker's
/// report; returns the outputs.
fn check(result: &FlareResult, what: &str, points: &[Vec<f64>], expected: &Lloyd) -> Vec<Value> {
    let outputs = outputs(result);
    let summary = &outputs[0];
    assert_eq!(summary["total_points"], points.len(), "{what}");
    assert_eq!(summary["dimensions"], points[0].len(), "{what}");
    assert_eq!(summary["k"], expected.centroids.len(), "{what}");
    assert_eq!(summary["converged"], true, "{what}");
    assert_eq!(summary["iterations"], expected.iterations, "{what}");
    assert_eq!(summary["sizes"], json!(expected.sizes), "{what}");
    let centroids = centroids_of(summary);
    let off = distance(&centroids, &expected.centroids);
    assert!(off < CLOSE, "{what}: {off} from the test's Lloyd");
    let mut held = 0;
    for (id, output) in outputs.iter().enumerate() {
        assert_eq!(output["worker"], id, "{what}");
        let phases: Vec<&String> = output["seconds"].as_object().expect("seconds").keys().collect();
        assert_eq!(phases, PHASES, "{what}");
        held += output["points"].as_u64().expect("points");
        if id > 0 {
            assert!(output.get("centroids").is_none() && output.get("iterations").is_none(), "{what}: worker {id}");
        }
    }
    assert_eq!(held, points.len() as u64, "{what}: every row is held by one worker");
    outputs
}

#[tokio::test]
async fn centroids_of_a_clustered_csv_match_a_plain_lloyd_iteration() {
    let text = clustered_csv(0x5EED_CAFE, 3000, 3, 6);
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("points.csv"), &text).expect("write");
    let points = parse(&text);
    let expected = lloyd(&points, 6, 1e-9);
    assert!(expected.iterations > 3, "a real iteration: {expected:?}");
    let size = text.len() as u64;
    let mut first: Option<Vec<Vec<f64>>> = None;
    let layouts = [(1, 1, None), (6, 4, None), (7, 3, None), (4, 2, Some(BrokerKind::Redis))];
    for (workers, granularity, broker) in layouts {
        let what = format!("{workers} workers in packs of {granularity}, {broker:?}");
        let mut run = Run::new(workers, granularity);
        run.broker = broker;
        run.data = Some(dir.path());
        let result = run.flare(workload("kmeans"), &input("/data/points.csv", 6, 1e-9)).await;
        let outputs = check(&result, &what, &points, &expected);
        let centroids = centroids_of(&outputs[0]);
        let reference = first.get_or_insert_with(|| centroids.clone());
        if workers == 1 {
            // One worker adds its rows in file order, as the test does, so
            // the centroids are the same bits: the JSON holds the test's
            // shortest round-trip text (`outputs` parses it with `as_f64`,
            // which may be an ulp off).
            let raw = result.workers[0].outcome.as_deref().expect("succeeded");
            let text = serde_json::to_string(&expected.centroids).expect("JSON");
            assert!(String::from_utf8_lossy(raw).contains(&text), "{what}: not the test's bits");
        }
        assert!(distance(&centroids, reference) < CLOSE, "{what}: {} from (1, 1)", distance(&centroids, reference));
        let bytes: Vec<u64> = outputs.iter().map(|o| o["bytes_read"].as_u64().expect("bytes_read")).collect();
        assert!(bytes.iter().sum::<u64>() >= size, "{what}: the file is read whole: {bytes:?} of {size}");
        if workers > 1 {
            let share = |o: &Value| o["points"].as_u64().expect("points");
            assert!(outputs.iter().all(|o| share(o) < 3000 / 2 && share(o) > 0), "{what}: shares");
        }
    }
}

#[tokio::test]
async fn an_emptied_cluster_keeps_its_centroid_and_ties_go_to_the_lower_index() {
    // One column; the first three rows start the centroids at 0, 4, 100.
    // Step 1: 2 ties between 0 and 4 and joins 0; 51 joins 4; 53 joins
    // 100: means 1, 27.5, 206/3. Step 2: 4 is now nearest 1 and 51 nearest
    // 206/3, so the second cluster is empty and stays at 27.5: means 2,
    // 27.5, 64.25. Step 3 moves nothing.
    let text = "value\n0\n4\n100\n2\n51\n53\n53\n";
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("small.csv"), text).expect("write");
    let points = parse(text);
    let expected = lloyd(&points, 3, 0.0);
    assert_eq!(expected.centroids, [[2.0], [27.5], [64.25]]);
    assert_eq!((expected.sizes.as_slice(), expected.iterations), ([3, 0, 4].as_slice(), 3));
    for (workers, granularity) in [(1, 1), (6, 4), (7, 3)] {
        let what = format!("{workers} workers in packs of {granularity}");
        let mut run = Run::new(workers, granularity);
        run.data = Some(dir.path());
        let result = run.flare(workload("kmeans"), &input("/data/small.csv", 3, 0.0)).await;
        let outputs = check(&result, &what, &points, &expected);
        // Whole numbers and halves: exact whatever the order of the sums.
        assert_eq!(centroids_of(&outputs[0]), expected.centroids, "{what}");
        assert_eq!(outputs[0]["movement"], 0.0, "{what}");
    }
}

/// Point `i` of the guest's generator, from its documented layout.
fn documented_point(seed: u64, clusters: u64, dimensions: usize, i: u64) -> Vec<f64> {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let draws = |state: u64| (1..).map(move |n: u64| mix(state.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
    let unit = |draw: u64| (draw >> 11) as f64 / (1u64 << 53) as f64;
    let mut point = draws(seed ^ mix(i));
    let c = point.next().expect("endless") % clusters;
    let mut centre = draws(seed ^ mix(!c));
    (0..dimensions)
        .map(|_| {
            let at = 10.0 * (2.0 * unit(centre.next().expect("endless")) - 1.0);
            let mut noise = 0.0;
            for _ in 0..12 {
                noise += unit(point.next().expect("endless"));
            }
            at + (noise - 6.0)
        })
        .collect()
}

#[tokio::test]
async fn the_sample_file_is_the_documented_generator_and_clusters_alike() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kmeans/data");
    let text = std::fs::read_to_string(data.join("sample.csv")).expect("the sample exists");
    let points = parse(&text);
    let generated: Vec<Vec<f64>> = (0..2000).map(|i| documented_point(10, 4, 3, i)).collect();
    assert_eq!(points, generated, "the sample is generate {{2000 points, 3 dimensions, 4 clusters, seed 10}}");
    let expected = lloyd(&points, 4, 1e-9);
    let mut run = Run::new(6, 4);
    run.data = Some(&data);
    let result = run.flare(workload("kmeans"), &input("/data/sample.csv", 4, 1e-9)).await;
    check(&result, "the sample", &points, &expected);

    let generate = json!({
        "generate": { "points": 2000, "dimensions": 3, "clusters": 4, "seed": 10 },
        "k": 4,
        "tolerance": 1e-9,
    });
    for (workers, granularity) in [(1, 1), (7, 3)] {
        let result = Run::new(workers, granularity).flare(workload("kmeans"), &generate).await;
        let what = format!("generated on {workers} workers in packs of {granularity}");
        let outputs = check(&result, &what, &points, &expected);
        assert!(outputs.iter().all(|o| o["bytes_read"] == 0), "{what}: nothing is read");
        let shares: Vec<u64> = outputs.iter().map(|o| o["points"].as_u64().expect("points")).collect();
        let even: Vec<u64> = (0..workers)
            .map(|i| (u64::from(i) + 1) * 2000 / u64::from(workers) - u64::from(i) * 2000 / u64::from(workers))
            .collect();
        assert_eq!(shares, even, "{what}: rows [i·R/N, (i+1)·R/N)");
    }
}

#[tokio::test]
async fn bad_input_fails_the_flare_naming_the_file_and_line() {
    let mut bad = String::from("a,b,c\n");
    for i in 0..400 {
        bad.push_str(&format!("{i},{}.25,-1\n", i % 17));
    }
    bad.push_str("1,2\n");
    bad.push_str(&"5,6,7\n".repeat(100));
    bad.push_str("x,1,1\n");
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("bad.csv"), &bad).expect("write");
    std::fs::write(dir.path().join("early.csv"), "a,b,c\n1,2,3\n1,abc,2\n4,5,6\n").expect("write");
    let cases = [
        (input("/data/bad.csv", 3, 1e-6), "/data/bad.csv line 402: 2 columns, the header has 3"),
        (input("/data/early.csv", 2, 1e-6), "/data/early.csv line 3: column 2 (\"abc\") is not a finite number"),
        (input("/data/early.csv", 0, 1e-6), "k must be in 1..=4096, got 0"),
        (input("/data/early.csv", 1, -1.0), "tolerance must be a finite number ≥ 0, got -1"),
        (
            json!({ "generate": { "points": 10, "dimensions": 2, "clusters": 3 }, "k": 11 }),
            "k = 11 but generate.points is 10",
        ),
    ];
    for (input, message) in cases {
        let mut run = Run::new(4, 2);
        run.data = Some(dir.path());
        let result = run.flare(workload("kmeans"), &input).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.kind, failure.message.as_str()), (FailureKind::GuestError, message), "{input}");
    }
    std::fs::write(dir.path().join("short.csv"), "a,b,c\n1,2,3\n4,5,6\n").expect("write");
    let mut run = Run::new(3, 2);
    run.data = Some(dir.path());
    let result = run.flare(workload("kmeans"), &input("/data/short.csv", 3, 1e-6)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.message, "k = 3 but /data/short.csv has only 2 rows");
    let result = run.flare(workload("kmeans"), &input("/data/missing.csv", 3, 1e-6)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert!(failure.message.starts_with("could not read the points /data/missing.csv: "), "{failure}");
}
