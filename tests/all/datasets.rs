//! Data in and out of deployed flares: datasets an operator names, read at
//! `/data`; output directories kept in the store, listed and served to
//! their tenant only, fetched with `burst results --download`, deleted at
//! retention; a real workload (TeraSort, one flare and the two-stage
//! baseline chained by `"dataset": "flare/ID"`) and the other workloads on
//! their samples run through the service;
//! and across two `burst host` daemons, packs placed only where the
//! dataset is, their outputs uploaded before they report.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::controller::{Api, Controller, TempDir, burst_command};
use crate::hosts::{CLUSTER_TOKEN_ENV, HostDaemon};
use crate::support::outputs;
use crate::workloads::{Run, workload};

/// Non-uniform content: each line differs.
fn sample_text() -> String {
    (0..40).map(|i| format!("line {i}: {}\n", "ab".repeat(i % 7))).collect()
}

/// A dataset directory holding `input.txt`.
fn dataset() -> (TempDir, String) {
    let dir = TempDir::new("burst-dataset");
    let text = sample_text();
    std::fs::write(dir.0.join("input.txt"), &text).expect("write");
    (dir, text)
}

fn copy_request(workers: u32, dataset: &str, extra: Value) -> Value {
    let mut request = json!({
        "definition": "fixtures",
        "burst_size": workers,
        "granularity": 2,
        "input": {"scenario": "files_copy", "path": "input.txt", "repeat": 1},
        "dataset": dataset,
        "output": true,
    });
    if let (Value::Object(request), Value::Object(extra)) = (&mut request, extra) {
        request.extend(extra);
    }
    request
}

/// The files a `files_copy` flare of `workers` must leave, with their bytes.
fn expected_files(workers: u32, text: &str) -> Vec<(String, Vec<u8>)> {
    (0..workers).map(|id| (format!("worker-{id}/copy.txt"), format!("worker {id}: {text}").into_bytes())).collect()
}

/// Lists a flare's outputs and fetches each file, in listed order; checks
/// that the listing's sizes and total are those of the bytes served.
async fn fetch_outputs(api: &Api, flare_id: &str) -> Vec<(String, Vec<u8>)> {
    let (status, listed) = api.get(&format!("/v1/flares/{flare_id}/outputs")).await;
    assert_eq!(status, 200, "{listed}");
    let mut files = Vec::new();
    for file in listed["files"].as_array().expect("files") {
        let path = file["path"].as_str().expect("path").to_owned();
        let encoded = path.replace('/', "%2F");
        let response = api
            .request(reqwest::Method::GET, &format!("/v1/flares/{flare_id}/outputs/{encoded}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200, "{path}");
        let bytes = response.bytes().await.expect("body").to_vec();
        assert_eq!(file["bytes"], bytes.len() as u64, "{path}");
        files.push((path, bytes));
    }
    assert_eq!(listed["bytes"], files.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
    files
}

/// Checks a flare's outputs against `expected`, in order.
async fn check_outputs(api: &Api, flare_id: &str, expected: &[(String, Vec<u8>)]) {
    assert!(fetch_outputs(api, flare_id).await == expected, "{flare_id}: other output files");
}

#[tokio::test]
async fn a_flare_reads_its_dataset_and_its_outputs_are_served_to_its_tenant_only() {
    let (data, text) = dataset();
    let secret = TempDir::new("burst-dataset-secret");
    std::fs::write(secret.0.join("input.txt"), "only for alice").expect("write");
    let sample = format!("sample={}", data.0.display());
    let private = format!("private={}", secret.0.display());
    let controller = Controller::start(
        &["--slots", "8", "--dataset", &sample, "--dataset", &private, "--dataset-tenants", "private=alice"],
        &[("BURST_TOKENS", "alice:token-a,bob:token-b")],
    );
    let (alice, bob) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    alice.deploy_guest("fixtures", "burst_fixtures").await;
    bob.deploy_guest("fixtures", "burst_fixtures").await;

    let results = alice.flare_wait(copy_request(5, "sample", json!({}))).await;
    assert_eq!(results["status"], "succeeded", "{results}");
    assert_eq!(results["outputs"], json!(vec![vec![text.clone()]; 5]));
    let flare_id = results["flare_id"].as_str().expect("id").to_owned();
    let expected = expected_files(5, &text);
    check_outputs(&alice, &flare_id, &expected).await;
    let (_, doc) = alice.get(&format!("/v1/flares/{flare_id}")).await;
    assert_eq!((&doc["dataset"], &doc["output_quota_bytes"]), (&json!("sample"), &json!(1u64 << 30)), "{doc}");

    // Another tenant sees neither the list nor a file.
    for path in [format!("/v1/flares/{flare_id}/outputs"), format!("/v1/flares/{flare_id}/outputs/worker-0%2Fcopy.txt")]
    {
        let (status, body) = bob.get(&path).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    // No path leaves the flare's directory.
    for (path, code, status) in [
        ("..%2F..%2Fburst.redb", "bad_path", 400),
        ("%2Fetc%2Fpasswd", "bad_path", 400),
        ("worker-0", "not_found", 404),
        ("missing.txt", "not_found", 404),
    ] {
        let (got, body) = alice.get(&format!("/v1/flares/{flare_id}/outputs/{path}")).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}: {body}");
    }

    // `burst results --download` writes the same bytes.
    let download = TempDir::new("burst-download");
    let args: Vec<String> =
        ["results", &flare_id, "--download", &download.0.display().to_string()].iter().map(|s| s.to_string()).collect();
    let envs = [("BURST_URL", controller.url.as_str()), ("BURST_TOKEN", "token-a")];
    let output = burst_command(&args, &envs).output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for (path, bytes) in &expected {
        assert_eq!(&std::fs::read(download.0.join(path)).expect("downloaded"), bytes, "{path}");
    }

    // A later flare reads the outputs as its dataset (the second stage of a
    // two-stage job); other tenants cannot.
    let mut request = copy_request(2, &format!("flare/{flare_id}"), json!({}));
    request["input"]["path"] = json!("worker-3/copy.txt");
    let results = alice.flare_wait(request).await;
    let copied = format!("worker 3: {text}");
    assert_eq!(results["outputs"], json!([[copied], [copied]]), "{results}");

    // Unknown datasets, and one the tenant may not read, are refused alike.
    let others = format!("flare/{flare_id}");
    for (api, name) in [(&alice, "nope"), (&bob, "private"), (&bob, others.as_str())] {
        let (status, body) = api.post("/v1/flares", &copy_request(2, name, json!({}))).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("unknown_dataset")), "{body}");
        let message = format!("no dataset `{name}` (the operator names datasets with `--dataset NAME=DIR`;");
        assert!(body["message"].as_str().is_some_and(|m| m.starts_with(&message)), "{body}");
    }
    let results = alice.flare_wait(copy_request(2, "private", json!({}))).await;
    assert_eq!(results["outputs"], json!([["only for alice"], ["only for alice"]]), "{results}");
    for (extra, code) in [
        (json!({"output": false, "output_quota_bytes": 10}), "bad_output"),
        (json!({"output_quota_bytes": 0}), "bad_output"),
        (json!({"output_quota_bytes": (256u64 << 30) + 1}), "bad_output"),
    ] {
        let (status, body) = alice.post("/v1/flares", &copy_request(2, "sample", extra.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{extra}: {body}");
    }
}

#[tokio::test]
async fn a_write_past_the_flares_quota_fails_in_the_guest_and_outputs_go_at_retention() {
    let (data, text) = dataset();
    let sample = format!("sample={}", data.0.display());
    let controller = Controller::start(&["--slots", "8", "--dataset", &sample, "--retention-secs", "2"], &[]);
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    // Each worker writes 10 copies; 4 workers' files do not fit 3 files' worth.
    let per_worker = format!("worker 0: {text}").len() as u64 * 10;
    let request = copy_request(
        4,
        "sample",
        json!({"input": {"scenario": "files_copy", "path": "input.txt",
        "repeat": 10}, "output_quota_bytes": 3 * per_worker + 10}),
    );
    let (status, body) = api.post("/v1/flares", &request).await;
    assert_eq!(status, 202, "{body}");
    let flare_id = body["flare_id"].as_str().expect("id").to_owned();
    let doc = api.wait_final(&flare_id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    let message = doc["failure"]["message"].as_str().expect("a message");
    assert!(message.contains("/copy.txt: I/O error (os error 29)"), "{message}");
    let (_, listed) = api.get(&format!("/v1/flares/{flare_id}/outputs")).await;
    assert!(listed["bytes"].as_u64().expect("bytes") <= 3 * per_worker + 10, "{listed}");

    // Retention deletes the flare and its files.
    let dir = controller.data_dir().join("outputs").join(&flare_id);
    assert!(dir.is_dir());
    let started = Instant::now();
    while dir.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "{} outlived the retention", dir.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(api.get(&format!("/v1/flares/{flare_id}")).await.0, 404);
}

/// The hosts a flare's packs ran on.
/// `outputs` without their timings.
fn untimed(outputs: &Value) -> Vec<Value> {
    let mut outputs = outputs.as_array().expect("outputs").clone();
    for output in &mut outputs {
        output.as_object_mut().expect("an object").remove("timings_us");
    }
    outputs
}

#[tokio::test]
async fn terasort_sorts_a_dataset_in_one_flare_and_in_two_stages_through_the_service() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/terasort/data");
    let records = std::fs::read(data.join("sample.dat")).expect("the sample exists");
    let mut sorted: Vec<&[u8]> = records.chunks(100).collect();
    sorted.sort_unstable();
    let sorted = sorted.concat();
    let dataset = format!("sort={}", data.display());
    let controller = Controller::start(&["--slots", "8", "--dataset", &dataset], &[("BURST_TOKENS", "alice:token-a")]);
    let alice = controller.api(Some("token-a"));
    alice.deploy_guest("terasort", "terasort").await;
    let request = |dataset: &str, input: Value| {
        json!({
            "definition": "terasort", "burst_size": 6, "granularity": 4,
            "input": input, "dataset": dataset, "output": true,
        })
    };
    let parts = |files: &[(String, Vec<u8>)]| -> Vec<u8> {
        let names: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(names, (0..6).map(|w| format!("part-{w:05}")).collect::<Vec<_>>());
        files.iter().flat_map(|(_, bytes)| bytes.clone()).collect()
    };

    let one = alice.flare_wait(request("sort", json!({"input": "/data/sample.dat", "output": "/out"}))).await;
    assert_eq!(one["status"], "succeeded", "{one}");
    let one_files = fetch_outputs(&alice, one["flare_id"].as_str().expect("id")).await;
    assert!(parts(&one_files) == sorted, "the one flare's parts are not the sample sorted");

    let map = json!({"stage": "map", "input": "/data/sample.dat", "output": "/out"});
    let mapped = alice.flare_wait(request("sort", map)).await;
    assert_eq!(mapped["status"], "succeeded", "{mapped}");
    let map_id = mapped["flare_id"].as_str().expect("id");
    assert_eq!(fetch_outputs(&alice, map_id).await.len(), 36, "one run per (source, destination)");
    let reduce = json!({"stage": "reduce", "input": "/data", "output": "/out"});
    let reduced = alice.flare_wait(request(&format!("flare/{map_id}"), reduce)).await;
    assert_eq!(reduced["status"], "succeeded", "{reduced}");
    assert_eq!(untimed(&reduced["outputs"]), untimed(&one["outputs"]), "the two stages return what one flare does");
    let reduced_files = fetch_outputs(&alice, reduced["flare_id"].as_str().expect("id")).await;
    assert!(reduced_files == one_files, "the two stages wrote other parts");
}

/// `a` and `b` alike, numbers within a relative 1e-12 (a pack's reduce
/// may add its workers' parts in the order they arrive).
fn alike(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("finite"), y.as_f64().expect("finite"));
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| alike(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| alike(v, w)))
        }
        _ => a == b,
    }
}

#[tokio::test]
async fn pagerank_gridsearch_and_kmeans_answer_through_the_service_as_in_one_process() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // (guest, input, the field of its timings): each answer is checked
    // against an independent computation in `workloads/`.
    let jobs = [
        ("pagerank", json!({"graph": "/data/sample.txt", "return_ranks": true}), "seconds"),
        ("gridsearch", json!({"data": "/data/sample.csv", "alphas": [0.01, 0.1, 1.0, 10.0], "folds": 5}), "timings"),
        ("kmeans", json!({"points": "/data/sample.csv", "k": 4, "tolerance": 1e-9}), "seconds"),
    ];
    let datasets: Vec<String> =
        jobs.iter().map(|(name, ..)| format!("{name}={}", root.join(name).join("data").display())).collect();
    let mut args = vec!["--slots", "8"];
    for dataset in &datasets {
        args.extend(["--dataset", dataset]);
    }
    let controller = Controller::start(&args, &[("BURST_TOKENS", "alice:token-a")]);
    let alice = controller.api(Some("token-a"));
    for (name, input, timings) in jobs {
        alice.deploy_guest(name, name).await;
        let request =
            json!({"definition": name, "burst_size": 6, "granularity": 4, "input": input.clone(), "dataset": name});
        let served = alice.flare_wait(request).await;
        assert_eq!(served["status"], "succeeded", "{name}: {served}");
        let data = root.join(name).join("data");
        let mut run = Run::new(6, 4);
        run.data = Some(&data);
        let local = outputs(&run.flare(workload(name), &input).await);
        let strip = |outputs: &[Value]| -> Vec<Value> {
            let mut outputs = outputs.to_vec();
            for output in &mut outputs {
                assert!(output.as_object_mut().expect("an object").remove(timings).is_some(), "{name}: {output}");
            }
            outputs
        };
        let served = strip(served["outputs"].as_array().expect("outputs"));
        assert!(
            alike(&Value::from(served.clone()), &Value::from(strip(&local))),
            "{name}: {served:?} against {local:?}"
        );
    }
}

fn hosts_of(results: &Value) -> Vec<String> {
    let placement = results["placement"].as_array().expect("placement");
    placement.iter().map(|p| p["host"].as_str().expect("host").to_owned()).collect()
}

fn host_ids(api_health: &Value, names: &[&str]) -> Vec<String> {
    let hosts = api_health["hosts"].as_array().expect("hosts");
    let id = |name: &&str| hosts.iter().find(|h| h["name"] == *name).expect("registered")["host_id"].clone();
    names.iter().map(|name| id(name).as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn packs_go_only_to_hosts_with_the_dataset_and_their_outputs_travel_back() {
    let (data, text) = dataset();
    let sample = format!("sample={}", data.0.display());
    let controller = Controller::start(&["--slots", "0"], &[CLUSTER_TOKEN_ENV]);
    let _hosts = [
        HostDaemon::start_with(&controller.url, 2, "alpha", &["--dataset", &sample]),
        HostDaemon::start_with(&controller.url, 2, "beta", &["--dataset", &sample]),
        HostDaemon::start_with(&controller.url, 8, "gamma", &[]),
    ];
    let api = controller.api(None);
    let with_data = host_ids(&api.get("/health").await.1, &["alpha", "beta"]);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let results = api.flare_wait(copy_request(4, "sample", json!({"backend": "redis"}))).await;
    assert_eq!(results["status"], "succeeded", "{results}");
    let mut used = hosts_of(&results);
    used.sort();
    assert_eq!(used, with_data, "both packs on the hosts that have the dataset, one each");
    let flare_id = results["flare_id"].as_str().expect("id");
    check_outputs(&api, flare_id, &expected_files(4, &text)).await;
    // A flare too large for the hosts with the dataset can never fit.
    let (status, body) = api.post("/v1/flares", &copy_request(6, "sample", json!({"backend": "redis"}))).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("never_fits")), "{body}");
    // The hosts keep no copy of what they uploaded.
    for host in &_hosts {
        assert_eq!(host.outputs_left(), Vec::<String>::new());
    }
}

/// Every file name under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}
