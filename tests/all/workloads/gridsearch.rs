//! `gridsearch`: checked against an independent computation.
//!
//! The test writes its own regression data (its own generator, not the
//! guest's) as a CSV into a temp dir seen as `/data`, parses the text back
//! and scores every alpha itself the plain way: for each fold it builds the
//! training rows, forms `XᵀX + αI` and `Xᵀy` from them and solves by
//! Gaussian elimination with partial pivoting (the guest subtracts each
//! fold's moments from the totals and uses Cholesky). The guest's scores
//! must match within 1e-9 relative, be the same bits at every burst size
//! and granularity (one alpha's score never depends on the layout), in
//! memory and through Redis, with the grid shared out in contiguous, even
//! shares. Bad input fails the flare with a message naming what was wrong.

use burst_host::FailureKind;
use burst_host::comm::BrokerKind;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, Stream, workload};
use crate::support::outputs;

/// The guest's scores and the test's agree this closely, relatively.
const CLOSE: f64 = 1e-9;

/// A grid of 11 points: uneven shares over 6 or 7 workers, and one alpha
/// (0) that is plain least squares.
const ALPHAS: [f64; 11] = [0.0, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0];

/// `rows` rows of `features` columns and a noisy linear target, with five
/// decimals and a few spaces.
fn regression_csv(seed: u64, rows: usize, features: usize) -> String {
    let mut rng = Stream(seed);
    let weights: Vec<f64> = (0..features).map(|_| 6.0 * rng.unit() - 3.0).collect();
    let mut header: Vec<String> = (0..features).map(|j| format!("f{j}")).collect();
    header.push("target".into());
    let mut text = header.join(",") + "\n";
    for i in 0..rows {
        let x: Vec<f64> = (0..features).map(|_| 4.0 * rng.unit() - 2.0).collect();
        let y = x.iter().zip(&weights).map(|(a, b)| a * b).sum::<f64>() + (rng.unit() - 0.5) * 3.0;
        let cells: Vec<String> = x.iter().chain([&y]).map(|v| format!("{v:.5}")).collect();
        text += &cells.join(if i % 5 == 0 { " , " } else { "," });
        text.push('\n');
    }
    text
}

/// The rows of a CSV under a header: features, then the target.
fn parse(text: &str) -> Vec<(Vec<f64>, f64)> {
    let rows = text.lines().skip(1).map(|line| {
        let mut cells: Vec<f64> = line.split(',').map(|cell| cell.trim().parse().expect("a number")).collect();
        let target = cells.pop().expect("a target");
        (cells, target)
    });
    rows.collect()
}

/// Solves `a w = b` by Gaussian elimination with partial pivoting.
fn gauss(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let d = b.len();
    for column in 0..d {
        let pivot = (column..d).max_by(|&i, &j| a[i][column].abs().total_cmp(&a[j][column].abs())).expect("rows");
        a.swap(column, pivot);
        b.swap(column, pivot);
        let (upper, lower) = a.split_at_mut(column + 1);
        let pivot_row = &upper[column];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[column] / pivot_row[column];
            for (entry, above) in row[column..].iter_mut().zip(&pivot_row[column..]) {
                *entry -= factor * above;
            }
            b[column + 1 + offset] -= factor * b[column];
        }
    }
    let mut w = vec![0.0; d];
    for row in (0..d).rev() {
        let rest: f64 = (row + 1..d).map(|k| a[row][k] * w[k]).sum();
        w[row] = (b[row] - rest) / a[row][row];
    }
    w
}

/// The mean over `folds` contiguous folds (sizes as even as possible, the
/// first ones larger) of the held-out mean squared error of ridge
/// regression without intercept.
fn direct_score(rows: &[(Vec<f64>, f64)], folds: usize, alpha: f64) -> f64 {
    let d = rows[0].0.len();
    let (base, extra) = (rows.len() / folds, rows.len() % folds);
    let mut total = 0.0;
    let mut start = 0;
    for fold in 0..folds {
        let held = start..start + base + usize::from(fold < extra);
        start = held.end;
        let mut a = vec![vec![0.0; d]; d];
        let mut b = vec![0.0; d];
        for (x, y) in rows[..held.start].iter().chain(&rows[held.end..]) {
            for j in 0..d {
                b[j] += x[j] * y;
                for k in 0..d {
                    a[j][k] += x[j] * x[k];
                }
            }
        }
        for (j, row) in a.iter_mut().enumerate() {
            row[j] += alpha;
        }
        let w = gauss(a, b);
        let squared: f64 = rows[held.clone()]
            .iter()
            .map(|(x, y)| (y - x.iter().zip(&w).map(|(p, q)| p * q).sum::<f64>()).powi(2))
            .sum();
        total += squared / held.len() as f64;
    }
    total / folds as f64
}

/// `(alpha, mean_mse)` of each entry of a `results` or `evaluated` list.
fn scores(list: &Value) -> Vec<(f64, f64)> {
    let list = list.as_array().expect("a list");
    list.iter().map(|s| (s["alpha"].as_f64().expect("alpha"), s["mean_mse"].as_f64().expect("mean_mse"))).collect()
}

/// What a grid search is expected to give.
struct Expected<'a> {
    alphas: &'a [f64],
    /// The test's score of each alpha.
    scores: &'a [f64],
    /// Rows of the data set.
    rows: usize,
}

/// Runs the grid on `run`, checks every worker's share and worker 0's
/// results against `expected`; returns worker 0's results.
async fn check(run: &Run<'_>, input: &Value, expected: &Expected<'_>, what: &str) -> Vec<(f64, f64)> {
    let Expected { alphas, scores: expected, rows } = *expected;
    let result = run.flare(workload("gridsearch"), input).await;
    let outputs = outputs(&result);
    let results = scores(&outputs[0]["results"]);
    assert_eq!(results.iter().map(|s| s.0).collect::<Vec<_>>(), alphas, "{what}: the grid in order");
    for ((alpha, got), want) in results.iter().zip(expected) {
        assert!((got - want).abs() <= CLOSE * want.abs(), "{what}: alpha {alpha}: {got} against {want}");
    }
    let least = results.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let first_least = results.iter().find(|s| s.1 == least).expect("a least");
    assert_eq!(scores(&json!([outputs[0]["best"]])), [*first_least], "{what}: best");
    let workers = outputs.len();
    let mut next = 0;
    for (id, output) in outputs.iter().enumerate() {
        let share = alphas.len() / workers + usize::from(id < alphas.len() % workers);
        let evaluated = scores(&output["evaluated"]);
        assert_eq!(evaluated, results[next..next + share], "{what}: worker {id}'s share");
        next += share;
        let loaded = if share == 0 { 0 } else { rows };
        assert_eq!(output["rows"], loaded, "{what}: worker {id} loads the data only for a share");
        if id > 0 {
            assert!(output.get("results").is_none() && output.get("best").is_none(), "{what}: worker {id}");
        }
    }
    results
}

fn input(data: &str, alphas: &[f64], folds: usize) -> Value {
    json!({ "data": data, "alphas": alphas, "folds": folds })
}

#[tokio::test]
async fn scores_of_a_csv_match_a_direct_computation_at_every_layout() {
    let text = regression_csv(0xF01D, 240, 6);
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("train.csv"), &text).expect("write");
    let rows = parse(&text);
    let expected: Vec<f64> = ALPHAS.iter().map(|&alpha| direct_score(&rows, 5, alpha)).collect();
    // A real grid: the error first falls with alpha, then rises.
    assert!(expected[10] > expected[5], "{expected:?}");
    let request = input("/data/train.csv", &ALPHAS, 5);
    let grid = Expected { alphas: &ALPHAS, scores: &expected, rows: 240 };
    let mut first: Option<Vec<(f64, f64)>> = None;
    let layouts = [(1, 1, None), (6, 4, None), (7, 3, None), (4, 2, Some(BrokerKind::Redis))];
    for (workers, granularity, broker) in layouts {
        let what = format!("{workers} workers in packs of {granularity}, {broker:?}");
        let mut run = Run::new(workers, granularity);
        (run.broker, run.data) = (broker, Some(dir.path()));
        let results = check(&run, &request, &grid, &what).await;
        assert_eq!(first.get_or_insert_with(|| results.clone()), &results, "{what}: not the same bits as (1, 1)");
    }
    // More workers than alphas: the last four have no share and load nothing.
    let few = [0.1, 1.0, 10.0];
    let expected: Vec<f64> = few.iter().map(|&alpha| direct_score(&rows, 3, alpha)).collect();
    let mut run = Run::new(7, 3);
    run.data = Some(dir.path());
    let grid = Expected { alphas: &few, scores: &expected, rows: 240 };
    check(&run, &input("/data/train.csv", &few, 3), &grid, "7 workers, 3 alphas").await;
}

#[tokio::test]
async fn the_sample_file_matches_a_direct_computation() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gridsearch/data");
    let rows = parse(&std::fs::read_to_string(data.join("sample.csv")).expect("the sample exists"));
    assert_eq!((rows.len(), rows[0].0.len()), (500, 5));
    let expected: Vec<f64> = ALPHAS.iter().map(|&alpha| direct_score(&rows, 5, alpha)).collect();
    let mut run = Run::new(6, 4);
    run.data = Some(&data);
    let grid = Expected { alphas: &ALPHAS, scores: &expected, rows: 500 };
    check(&run, &input("/data/sample.csv", &ALPHAS, 5), &grid, "the sample").await;
}

#[tokio::test]
async fn bad_input_fails_the_flare_naming_what_was_wrong() {
    let mut bad = String::from("a,b,y\n");
    for i in 0..50 {
        bad.push_str(&format!("{i},{}.5,{}\n", i % 7, i * 2));
    }
    bad.push_str("1,x,3\n");
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("bad.csv"), &bad).expect("write");
    std::fs::write(dir.path().join("tiny.csv"), "a,y\n1,2\n3,4\n").expect("write");
    // A constant-zero feature: X^T X is singular, so alpha 0 cannot be solved.
    std::fs::write(dir.path().join("zero.csv"), "a,b,y\n0,1,2\n0,2,3\n0,3,5\n0,4,4\n").expect("write");
    let cases = [
        (input("/data/bad.csv", &[1.0], 5), "/data/bad.csv line 52: column 2 (\"x\") is not a finite number"),
        (input("/data/tiny.csv", &[], 2), "alphas: empty; give at least one"),
        (input("/data/tiny.csv", &[1.0, -2.0], 2), "alphas[1]: -2; every alpha must be ≥ 0"),
        (input("/data/tiny.csv", &[1.0], 1), "folds: 1; need at least 2"),
        (input("/data/tiny.csv", &[1.0], 3), "folds: 3; must be at most the number of rows (2)"),
        (
            input("/data/zero.csv", &[1.0, 0.0], 2),
            "alphas[1] = 0: XᵀX + αI of the training part of fold 1 of 2 is not positive definite",
        ),
    ];
    for (request, message) in cases {
        let mut run = Run::new(1, 1);
        run.data = Some(dir.path());
        let result = run.flare(workload("gridsearch"), &request).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.kind, failure.message.as_str()), (FailureKind::GuestError, message), "{request}");
    }
    let mut run = Run::new(2, 1);
    run.data = Some(dir.path());
    let result = run.flare(workload("gridsearch"), &input("/data/missing.csv", &[1.0], 2)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert!(failure.message.starts_with("/data/missing.csv: "), "{failure}");
}
