//! The service against clients that misbehave: bodies sent without a
//! credential, oversized JSON, stalled uploads, a controller asked to listen
//! openly beyond loopback, and a shutdown while a client stalls.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::controller::{Controller, TempDir, burst_command};

/// The controller's `BODY_TIMEOUT`, `HEADER_TIMEOUT` and `SHUTDOWN_GRACE`
/// (`controller/src/service/{mod,listen}.rs`; the binary has no library to
/// import).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Sends `head` and `body` on a raw connection to the controller at `url`
/// and returns what it answers within `wait` (empty if nothing).
async fn raw(url: &str, head: &str, body: &[u8], wait: Duration) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("the controller accepts");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream.write_all(body).await.expect("body sent");
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(wait, stream.read(&mut answer)).await;
    let n = read.map_or(0, |r| r.unwrap_or(0));
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

fn post(path: &str, length: usize, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("Authorization: bearer {t}\r\n")).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: burst\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_request_without_its_credential_is_refused_before_its_body_is_read() {
    let controller = Controller::start(&[], &[("BURST_TOKENS", "a:token-a"), ("BURST_CLUSTER_TOKEN", "cluster")]);
    // 60 MiB announced, none of it sent: the answer must not wait for it.
    for path in ["/v1/flares", "/v1/hosts", "/v1/hosts/host-1/reports"] {
        let answer = raw(&controller.url, &post(path, 60 << 20, None), b"", Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer:?}");
        assert!(answer.to_ascii_lowercase().contains("www-authenticate: bearer"), "{path}: {answer}");
    }
    // The scheme is case-insensitive; a JSON body above 1 MiB is refused.
    let big = format!("{{\"definition\": \"x\", \"input\": \"{}\"}}", "a".repeat(3 << 19));
    let answer =
        raw(&controller.url, &post("/v1/flares", big.len(), Some("token-a")), big.as_bytes(), Duration::from_secs(10))
            .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
}

#[tokio::test]
async fn a_client_that_stalls_its_body_is_cut_off() {
    let controller = Controller::start(&[], &[]);
    let started = Instant::now();
    let answer = raw(&controller.url, &post("/v1/flares", 1000, None), b"{\"defin", Duration::from_secs(30)).await;
    let waited = started.elapsed();
    let limit = BODY_TIMEOUT + Duration::from_secs(3);
    assert!(waited < limit, "held {waited:?} by a stalled body: {answer:?}");
}

#[tokio::test]
async fn a_client_that_stalls_its_headers_is_cut_off() {
    // Half-sent headers once held a connection open for as long as the
    // client liked.
    let controller = Controller::start(&[], &[]);
    let started = Instant::now();
    let answer =
        raw(&controller.url, "POST /v1/flares HTTP/1.1\r\nHost: burst\r\n", b"", Duration::from_secs(30)).await;
    let waited = started.elapsed();
    let limit = HEADER_TIMEOUT + Duration::from_secs(3);
    assert!(waited < limit, "held {waited:?} by stalled headers: {answer:?}");
}

#[test]
fn an_open_controller_refuses_to_listen_beyond_loopback() {
    let data = TempDir::new("burst-open");
    let dir = data.0.display().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        ["serve", "--listen", "0.0.0.0:0", "--data-dir", &dir].iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let out = burst_command(&args(&[]), &[]).output().expect("burst runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0 without tenant tokens"), "{stderr}");
    let (mut child, line) = crate::controller::spawn_burst(&args(&["--insecure-open"]), &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("burst serve: listening on http://0.0.0.0:"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stalled_client() {
    let mut controller = Controller::start(&[], &[]);
    let address = controller.url.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&address).await.expect("connects");
    stalled.write_all(post("/v1/flares", 1000, None).as_bytes()).await.expect("head");
    stalled.write_all(b"{\"defin").await.expect("some body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill").args(["-TERM", &controller.pid().to_string()]).status().expect("kill");
    assert!(status.success());
    let limit = SHUTDOWN_GRACE + Duration::from_secs(3);
    let exited = tokio::task::block_in_place(|| controller.exited_within(limit));
    assert!(exited, "the controller was still running {limit:?} after SIGTERM");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_of_one_new_component_all_succeed() {
    // Writers of the same new component once shared one temporary file name.
    let controller = Controller::start(&[], &[]);
    let api = controller.api(None);
    let wasm = std::fs::read(crate::support::guest_path("hello")).expect("the guest was built");
    let deploys = (0..24).map(|i| {
        let (api, wasm) = (api.clone(), wasm.clone());
        tokio::spawn(async move { api.deploy(&format!("same-{i}"), wasm, "").await })
    });
    let mut digests = std::collections::HashSet::new();
    for deploy in deploys {
        let (status, body) = deploy.await.expect("task");
        assert_eq!(status, 201, "{body}");
        digests.insert(body["versions"][0]["digest"].as_str().expect("a digest").to_owned());
    }
    assert_eq!(digests.len(), 1);
    let results = api.flare_wait(serde_json::json!({"definition": "same-7", "burst_size": 4})).await;
    crate::controller::check_hello(&results, 4, |_| 0);
}

/// The controller's peak resident memory, in bytes.
fn peak_rss(controller: &Controller) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", controller.pid())).expect("/proc");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("a number") << 10
}

#[tokio::test]
async fn a_small_request_for_a_huge_burst_costs_the_controller_little() {
    // A 10 KB input for 100,000 workers was once copied per worker (~1 GB)
    // before admission refused it; the workers now share one value.
    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let before = peak_rss(&controller);
    let input = "x".repeat(10_000);
    let request = serde_json::json!({"definition": "hello", "burst_size": 100_000, "input": input});
    let (status, body) = api.post("/v1/flares", &request).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("never_fits")), "{body}");
    let grew = peak_rss(&controller).saturating_sub(before);
    assert!(grew < 64 << 20, "the controller's peak grew by {} MiB", grew >> 20);
}

#[tokio::test]
async fn host_reports_are_tied_to_the_host_that_ran_the_packs() {
    let controller = Controller::start(&["--slots", "0"], &[("BURST_CLUSTER_TOKEN", "cluster")]);
    let (tenant, cluster) = (controller.api(None), controller.api(Some("cluster")));
    tenant.deploy_guest("fixtures", "burst_fixtures").await;
    let (status, alpha) = cluster.post("/v1/hosts", &serde_json::json!({"name": "alpha", "slots": 4})).await;
    assert_eq!(status, 201, "{alpha}");
    let (_, beta) = cluster.post("/v1/hosts", &serde_json::json!({"name": "beta", "slots": 4})).await;
    let host = |doc: &serde_json::Value| doc["host_id"].as_str().expect("an id").to_owned();
    let (alpha_id, beta_id) = (host(&alpha), host(&beta));
    let alpha_api = controller.api(alpha["host_token"].as_str());
    let beta_api = controller.api(beta["host_token"].as_str());
    let request = serde_json::json!({
        "definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 30000,
    });
    let (status, accepted) = tenant.post("/v1/flares", &request).await;
    assert_eq!(status, 202, "{accepted}");
    let flare_id = accepted["flare_id"].as_str().expect("an id").to_owned();
    // Whichever host got the flare takes it; the other tries to forge.
    let (_, work) = alpha_api.get(&format!("/v1/hosts/{alpha_id}/work")).await;
    let (runner, runner_api, forger_id, forger_api) = if work["assignments"].as_array().is_some_and(|w| !w.is_empty()) {
        (alpha_id.clone(), &alpha_api, beta_id.clone(), &beta_api)
    } else {
        (beta_id.clone(), &beta_api, alpha_id.clone(), &alpha_api)
    };
    let report = |workers: serde_json::Value| {
        serde_json::json!({"flare_id": flare_id, "reports": [{
            "flare_id": flare_id, "workers": workers, "outputs": [], "bytes": {"local": 0, "remote": 0, "framing": 0},
        }]})
    };
    let worker = |id: u32| serde_json::json!({"worker_id": id, "pack_id": 0, "start_us": 0, "end_us": 0});
    // Another host's routes, with the cluster token or another host's credential.
    assert_eq!(cluster.post(&format!("/v1/hosts/{runner}/reports"), &report(serde_json::json!([]))).await.0, 401);
    assert_eq!(forger_api.get(&format!("/v1/hosts/{runner}/work")).await.0, 401);
    // No embedded host here: nobody may report as one.
    let (status, body) = cluster.post("/v1/hosts/local/reports", &report(serde_json::json!([]))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_host")), "{body}");
    // A host with no packs of the flare, and a flare that does not exist.
    let (status, body) =
        forger_api.post(&format!("/v1/hosts/{forger_id}/reports"), &report(serde_json::json!([worker(0)]))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_assigned")), "{body}");
    // The right host, the wrong workers: none, a stranger, or too few.
    for workers in [serde_json::json!([worker(99_999)]), serde_json::json!([worker(0), worker(1)])] {
        let (status, body) = runner_api.post(&format!("/v1/hosts/{runner}/reports"), &report(workers)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_report")), "{body}");
    }
    // The right workers, with records that do not fit the flare's one pack.
    let every = serde_json::json!([worker(0), worker(1), worker(2), worker(3)]);
    let with = |records: serde_json::Value| {
        let mut forged = report(every.clone());
        for (key, value) in records.as_object().expect("an object") {
            forged["reports"][0][key] = value.clone();
        }
        forged
    };
    // A report that says its packs could not run must not carry traffic either.
    let mut could_not_run = with(serde_json::json!({"traffic": [{"pack_id": 0, "from": [1, 2]}]}));
    could_not_run["reports"][0]["workers"] = serde_json::json!([]);
    could_not_run["reports"][0]["failure"] =
        serde_json::json!({"worker_id": null, "kind": "backend", "message": "no broker", "at_us": 1});
    let mut many_spans = report(every.clone());
    many_spans["reports"][0]["workers"][0]["comm_spans"] = (0..257u64).map(|i| [2 * i, 2 * i + 1]).collect();
    for (forged, what) in [
        (with(serde_json::json!({"traffic": [{"pack_id": 0, "from": [1, 2]}]})), "a matrix of two packs"),
        (with(serde_json::json!({"traffic": [{"pack_id": 1, "from": [1]}]})), "a pack the flare lacks"),
        (with(serde_json::json!({"traffic": [{"pack_id": 0, "from": [1]}, {"pack_id": 0, "from": [1]}]})), "twice"),
        (with(serde_json::json!({"calls": {"fork": 1}})), "a call of no primitive"),
        (many_spans, "257 comm spans"),
        (could_not_run, "traffic in a report of packs that could not run"),
    ] {
        let (status, body) = runner_api.post(&format!("/v1/hosts/{runner}/reports"), &forged).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_report")), "{what}: {body}");
    }
    let (_, doc) = tenant.get(&format!("/v1/flares/{flare_id}")).await;
    assert_eq!(doc["status"], "running", "forged reports changed nothing: {doc}");
    let (status, body) = runner_api.post(&format!("/v1/hosts/{runner}/reports"), &report(every)).await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_racing_a_delete_of_the_same_component_keeps_its_file() {
    // A deploy once wrote the component file (a no-op when it was there)
    // before it took the lock under which a delete removes the files no
    // definition uses: a delete that took the lock in between removed the
    // file the new version needed. Deploys of another component hold the
    // lock's queue so that the delete is queued before the new versions.
    let controller = Controller::start(&["--slots", "4"], &[("BURST_CLUSTER_TOKEN", "cluster")]);
    let (api, cluster) = (controller.api(None), controller.api(Some("cluster")));
    let hello = std::fs::read(crate::support::guest_path("hello")).expect("the guest was built");
    let filler = std::fs::read(crate::support::guest_path("burst_fixtures")).expect("the guest was built");
    assert_eq!(api.deploy("filler", filler.clone(), "").await.0, 201);
    for round in 0..8 {
        let (status, body) = api.deploy("old", hello.clone(), "").await;
        assert_eq!(status, 201, "{body}");
        let digest = body["versions"][0]["digest"].as_str().expect("a digest").to_owned();
        let mut racers = Vec::new();
        for i in 0..6 {
            let (api, filler) = (api.clone(), filler.clone());
            racers.push(tokio::spawn(async move { api.deploy(&format!("filler-{round}-{i}"), filler, "").await }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let deleter = api.clone();
        racers.push(tokio::spawn(async move { deleter.delete("/v1/definitions/old").await }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..4 {
            let (api, hello) = (api.clone(), hello.clone());
            racers.push(tokio::spawn(async move { api.deploy(&format!("new-{round}-{i}"), hello, "").await }));
        }
        for racer in racers {
            let (status, body) = racer.await.expect("task");
            assert!(status == 201 || status == 204, "{status} {body}");
        }
        let fetched = cluster.request(reqwest::Method::GET, &format!("/v1/components/{digest}")).send().await;
        let status = fetched.expect("the controller answers").status();
        assert_eq!(status, 200, "round {round}: the deployed versions' component is gone");
    }
    let results = api.flare_wait(serde_json::json!({"definition": "new-7-3", "burst_size": 4})).await;
    crate::controller::check_hello(&results, 4, |_| 0);
}

#[tokio::test]
async fn a_definition_is_not_deleted_while_its_flares_are_queued_or_running() {
    let controller = Controller::start(&["--slots", "4"], &[]);
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let blocker = serde_json::json!({"definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 2000});
    let mut ids = Vec::new();
    for expected in ["running", "queued"] {
        let (status, flare) = api.post("/v1/flares", &blocker).await;
        assert_eq!((status, flare["status"].as_str()), (202, Some(expected)), "{flare}");
        ids.push(flare["flare_id"].as_str().expect("id").to_owned());
    }
    let (status, body) = api.delete("/v1/definitions/fixtures").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("definition_in_use")), "{body}");
    assert_eq!(api.get("/v1/definitions/fixtures").await.0, 200);
    for id in &ids {
        // Both ran: the queued one still found its component.
        assert_eq!(api.wait_final(id).await["failure"]["kind"], "deadline");
    }
    assert_eq!(api.delete("/v1/definitions/fixtures").await.0, 204);
    assert_eq!(api.get("/v1/definitions/fixtures").await.0, 404);
}
