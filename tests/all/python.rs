//! Python work functions (`guest-sdk-python`, `examples/python`,
//! `tests/fixtures/python`), built the way a user builds them (pip, then
//! `burst-py build`): each answers as its Rust twin — `hello` byte for byte,
//! k-means within 1e-9 — in one process and through Redis at several burst
//! sizes and granularities; a Python guest that raises, spins, reaches for
//! the network or a host file, or misuses a collective fails or is refused
//! exactly as a Rust one; and the same component runs through `burst run`
//! and `burst serve` unchanged.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use burst_host::comm::BrokerKind;
use burst_host::{FailureKind, FlareResult};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::controller::{Controller, check_hello};
use crate::failures::assert_failed;
use crate::support::{fixtures, hello, outputs, python_guest_path, workspace_root};
use crate::workloads::{Run, program_at};

/// The k-means twins' centroids agree this closely.
const CLOSE: f64 = 1e-9;

fn python(name: &str) -> PathBuf {
    python_guest_path(name)
}

/// The raw outcome bytes of every worker of a flare that must have succeeded.
fn raw_outcomes(result: &FlareResult) -> Vec<Vec<u8>> {
    if let Some(failure) = &result.failure {
        panic!("flare failed: {failure}");
    }
    result.workers.iter().map(|w| w.outcome.clone().expect("succeeded").to_vec()).collect()
}

/// (workers, granularity, broker) of the twin comparisons.
const LAYOUTS: [(u32, u32, Option<BrokerKind>); 5] =
    [(1, 1, None), (4, 2, None), (5, 5, None), (7, 3, None), (4, 2, Some(BrokerKind::Redis))];

#[tokio::test]
async fn python_hello_answers_byte_for_byte_as_its_rust_twin() {
    let py = program_at(python("hello"));
    for (workers, granularity, broker) in LAYOUTS {
        let mut run = Run::new(workers, granularity);
        run.broker = broker;
        let rust = raw_outcomes(&run.flare(hello(), &Value::Null).await);
        let python = raw_outcomes(&run.flare(py, &Value::Null).await);
        assert_eq!(
            python.iter().map(|o| String::from_utf8_lossy(o)).collect::<Vec<_>>(),
            rust.iter().map(|o| String::from_utf8_lossy(o)).collect::<Vec<_>>(),
            "{workers} workers in packs of {granularity}, {broker:?}"
        );
    }
}

/// Asserts that two k-means runs agree: every worker's rows exactly, worker
/// 0's summary exactly but for the centroids and the movement, which are
/// within [`CLOSE`] (the two add the same numbers in the same order, but
/// Python's and Rust's float formatting and parsing may differ by an ulp).
fn assert_same_kmeans(python: &[Value], rust: &[Value], what: &str) {
    assert_eq!(python.len(), rust.len(), "{what}");
    for (id, (p, r)) in python.iter().zip(rust).enumerate() {
        for key in ["worker", "points"] {
            assert_eq!(p[key], r[key], "{what}: worker {id}'s {key}");
        }
        let keys = |v: &Value| v.as_object().expect("an object").keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(p), keys(r), "{what}: worker {id}'s keys");
    }
    let (p, r) = (&python[0], &rust[0]);
    for key in ["total_points", "dimensions", "k", "iterations", "converged", "sizes"] {
        assert_eq!(p[key], r[key], "{what}: {key}");
    }
    let numbers = |v: &Value| -> Vec<f64> {
        let rows = v["centroids"].as_array().expect("centroids");
        let mut all: Vec<f64> = rows
            .iter()
            .flat_map(|row| row.as_array().expect("a row").clone())
            .map(|x| x.as_f64().expect("a number"))
            .collect();
        all.push(v["movement"].as_f64().expect("movement"));
        all
    };
    let (pn, rn) = (numbers(p), numbers(r));
    assert_eq!(pn.len(), rn.len(), "{what}");
    let off = pn.iter().zip(&rn).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(off < CLOSE, "{what}: the twins' centroids differ by {off}");
}

#[tokio::test]
async fn python_kmeans_finds_the_centroids_of_its_rust_twin() {
    let py = program_at(python("kmeans"));
    let rust = crate::workloads::workload("kmeans");
    let generated = json!({
        "generate": {"points": 1500, "dimensions": 3, "clusters": 5, "seed": 7},
        "k": 5, "tolerance": 1e-9, "max_iterations": 60,
    });
    // The Rust twin's sample file, cut into splits by bytes: the Python
    // twin must hold the very rows its Rust twin holds.
    let sample = workspace_root().join("examples/kmeans/data");
    let file = json!({"points": "/data/sample.csv", "k": 4, "tolerance": 1e-9});
    for (workers, granularity, broker) in LAYOUTS {
        let what = format!("{workers} workers in packs of {granularity}, {broker:?}");
        let mut run = Run::new(workers, granularity);
        run.broker = broker;
        let (p, r) = (outputs(&run.flare(py, &generated).await), outputs(&run.flare(rust, &generated).await));
        assert_same_kmeans(&p, &r, &format!("generated, {what}"));
        assert!(p[0]["iterations"].as_u64().expect("iterations") > 3, "a real iteration: {}", p[0]);
        run.data = Some(&sample);
        let (p, r) = (outputs(&run.flare(py, &file).await), outputs(&run.flare(rust, &file).await));
        assert_same_kmeans(&p, &r, &format!("the sample file, {what}"));
        assert_eq!(p[0]["total_points"], 2000, "{what}");
    }
}

#[tokio::test]
async fn a_python_guest_that_raises_or_spins_fails_its_flare_like_a_rust_one() {
    let py = program_at(python("fixtures"));
    for broker in [None, Some(BrokerKind::Redis)] {
        let mut run = Run::new(4, 2);
        run.broker = broker;
        let result = run.flare(py, &json!({"scenario": "raise", "worker": 3})).await;
        assert_failed(&result, Some(3), FailureKind::GuestError, "RuntimeError: worker 3 raises on purpose");
        let stderr = String::from_utf8_lossy(&result.workers[3].stderr);
        assert!(stderr.starts_with("Traceback (most recent call last):"), "{broker:?}: {stderr}");
        assert!(stderr.contains("RuntimeError: worker 3 raises on purpose"), "{stderr}");
        run.deadline = Duration::from_secs(3);
        let result = run.flare(py, &json!({"scenario": "spin", "worker": 1})).await;
        assert_failed(&result, Some(1), FailureKind::Deadline, "while the worker was computing");
    }
}

#[tokio::test]
async fn a_python_guest_reaches_no_socket_and_no_host_file() {
    let py = program_at(python("fixtures"));
    let input = json!({
        "scenario": "reach",
        "connect": ["127.0.0.1:6379", "localhost:6379"],
        "read": ["/etc/passwd", "/data/anything", "/proc/self/environ"],
    });
    let result = Run::new(2, 1).flare(py, &input).await;
    // componentize-py's CPython is built without `_socket`: no Python code
    // can open one, and the interfaces under it are denied as for Rust.
    let expected =
        json!(["refused: ModuleNotFoundError", "refused: ModuleNotFoundError", "denied", "denied", "denied"]);
    assert_eq!(outputs(&result), [expected.clone(), expected]);
}

#[tokio::test]
async fn misused_collectives_raise_the_comm_errors_a_rust_guest_gets() {
    let py = program_at(python("fixtures"));
    let input = json!({"scenario": "comm_misuse"});
    for broker in [None, Some(BrokerKind::Redis)] {
        let mut run = Run::new(4, 2);
        run.broker = broker;
        let python = outputs(&run.flare(py, &input).await);
        let rust = outputs(&run.flare(fixtures(), &input).await);
        assert_eq!(python, rust, "{broker:?}");
        assert_eq!(python[0][0], "invalid-worker(4)");
        assert_eq!(python[0][2], "invalid-argument");
    }
    let codec = outputs(&Run::new(2, 1).flare(py, &json!({"scenario": "codec"})).await);
    assert_eq!(codec[0], "sent");
    let message = codec[1].as_str().expect("a string");
    assert!(message.starts_with("CodecError: decoding a message of 14 bytes: "), "{message}");
}

#[test]
fn a_python_flare_runs_through_burst_run_and_burst_serve_unchanged() {
    let wasm = python("hello");
    let cache = TempDir::new().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(["run", "--workers", "6", "--granularity", "3", "--json", "--cache-dir"])
        .arg(cache.path())
        .arg(&wasm)
        .output()
        .expect("burst runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    check_hello(&doc, 6, |id| id / 3);

    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    let tokio = tokio::runtime::Runtime::new().expect("a runtime");
    tokio.block_on(async {
        let (status, body) = api.deploy("hello-py", std::fs::read(&wasm).expect("built"), "").await;
        assert_eq!(status, 201, "{body}");
        for backend in ["memory", "redis"] {
            let request = json!({"definition": "hello-py", "burst_size": 8, "granularity": 4, "backend": backend});
            check_hello(&api.flare_wait(request).await, 8, |id| id / 4);
        }
    });
}
