//! `burst serve` over HTTP with its embedded host: deploy, flare, results,
//! admission (queue and refusal), every bad input, restarts and retention.

use std::time::Duration;

use serde_json::{Value, json};

use crate::controller::{Controller, check_hello};
use crate::support::guest_path;

fn hello_wasm() -> Vec<u8> {
    std::fs::read(guest_path("hello")).expect("the guest was built")
}

#[tokio::test]
async fn deploy_and_flare_hello_with_wait_gives_ordered_outputs_and_placement() {
    let controller = Controller::start(&["--slots", "16"], &[]);
    let api = controller.api(None);
    let deployed = api.deploy_guest("hello", "hello").await;
    assert_eq!(deployed["name"], "hello");
    assert_eq!(deployed["versions"][0]["version"], 1);
    assert_eq!(deployed["versions"][0]["digest"].as_str().map(str::len), Some(64));

    let results = api.flare_wait(json!({"definition": "hello", "burst_size": 8, "granularity": 4})).await;
    check_hello(&results, 8, |id| id / 4);
    assert_eq!(results["burst_size"], 8);
    assert_eq!(results["granularity"], 4);
    assert_eq!(
        results["placement"],
        json!([
            {"pack_id": 0, "first": 0, "count": 4, "host": "local"},
            {"pack_id": 1, "first": 4, "count": 4, "host": "local"},
        ])
    );
    // Two ring messages of one byte cross packs, the all-reduce of one u64
    // crosses twice (as in `burst run`).
    assert_eq!(results["bytes"]["remote"], 2 + 2 * 8);
    for worker in results["workers"].as_array().expect("workers") {
        assert_eq!(worker["host"], "local");
        assert!(worker["end_us"].as_u64() >= worker["start_us"].as_u64());
    }
    let id = results["flare_id"].as_str().expect("an id");
    let (status, doc) = api.get(&format!("/v1/flares/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["workers_started"], 8);
    assert_eq!(doc["workers_finished"], 8);
    assert_eq!(doc["packing"], "homogeneous");
    assert_eq!(doc["backend"], "memory");
    let (status, again) = api.get(&format!("/v1/flares/{id}/results")).await;
    assert_eq!(status, 200);
    assert_eq!(again, results);
    let (_, health) = api.get("/health").await;
    assert_eq!(health["slots"], 16);
    assert_eq!(health["free_slots"], 16);
    assert_eq!(health["hosts"][0]["host_id"], "local");
}

#[tokio::test]
async fn one_input_per_worker_and_captured_output_reach_the_results() {
    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let inputs = json!([{"scenario": "print_lines"}, {"scenario": "print_lines"}, {"scenario": "print_lines"}]);
    let results = api.flare_wait(json!({"definition": "fixtures", "inputs": inputs})).await;
    assert_eq!(results["status"], "succeeded", "{results}");
    assert_eq!(results["outputs"].as_array().map(Vec::len), Some(3));
    for worker in results["workers"].as_array().expect("workers") {
        assert!(worker["stdout"].as_str().is_some_and(|s| !s.is_empty()), "{worker}");
        assert!(worker["stderr"].as_str().is_some_and(|s| !s.is_empty()), "{worker}");
    }
    let failed = api
        .flare_wait(
            json!({"definition": "fixtures", "burst_size": 3, "input": {"scenario": "fail_guest_error", "victim": 2}}),
        )
        .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure"]["worker_id"], 2);
    assert_eq!(failed["failure"]["kind"], "guest_error");
    assert_eq!(failed["workers"][2]["error"]["kind"], "guest_error");
}

#[tokio::test]
async fn multipart_deploy_with_defaults_versions_list_get_and_delete() {
    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    let form = reqwest::multipart::Form::new()
        .part("component", reqwest::multipart::Part::bytes(hello_wasm()).file_name("hello.wasm"))
        .text("granularity", "2")
        .text("deadline_ms", "30000");
    let (status, first) = api.send(api.request(reqwest::Method::POST, "/v1/definitions/greeter").multipart(form)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["versions"][0]["defaults"], json!({"granularity": 2, "deadline_ms": 30000}));
    let (status, second) = api.deploy("greeter", hello_wasm(), "?memory_bytes=67108864").await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["versions"][1]["version"], 2);
    assert_eq!(second["versions"][1]["digest"], first["versions"][0]["digest"]);
    assert_eq!(second["versions"][1]["defaults"], json!({"memory_bytes": 67108864}));
    // The same bytes and defaults again (a retried deploy) add no version.
    let (status, again) = api.deploy("greeter", hello_wasm(), "?memory_bytes=67108864").await;
    assert_eq!((status, again), (200, second.clone()));

    // Version 1's default granularity applies when the flare names it.
    let results = api.flare_wait(json!({"definition": "greeter", "version": 1, "burst_size": 4})).await;
    check_hello(&results, 4, |id| id / 2);
    let (_, list) = api.get("/v1/definitions").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "greeter");
    let (status, got) = api.get("/v1/definitions/greeter").await;
    assert_eq!((status, got["versions"].as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(api.delete("/v1/definitions/greeter").await.0, 204);
    assert_eq!(api.get("/v1/definitions/greeter").await.0, 404);
    assert_eq!(api.delete("/v1/definitions/greeter").await.1["code"], "not_found");
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_with_its_code_and_stores_nothing() {
    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    // Bad uploads.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("junk", b"not wasm at all".to_vec(), "", 400, "not_a_component"),
        ("core", core_module, "", 400, "not_a_component"),
        ("big", vec![0; (64 << 20) + 1], "", 413, "component_too_large"),
        ("bad name!", hello_wasm(), "", 400, "bad_name"),
        ("...", hello_wasm(), "", 400, "bad_name"),
        (".hidden", hello_wasm(), "", 400, "bad_name"),
        ("hello", hello_wasm(), "?granularity=0", 400, "bad_granularity"),
        ("hello", hello_wasm(), "?memory_bytes=0", 400, "bad_limits"),
        ("hello", hello_wasm(), "?deadline_ms=0", 400, "bad_deadline"),
    ];
    for (name, wasm, query, status, code) in cases {
        let (got, body) = api.deploy(&name.replace(' ', "%20"), wasm, query).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{name}{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A component of another world: a valid component that exports nothing.
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let (status, body) = api.deploy("empty", empty_component, "").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("wrong_world")), "{body}");
    assert_eq!(api.get("/v1/definitions").await.1, json!([]));

    api.deploy_guest("hello", "hello").await;
    let flare_cases = [
        (json!({"definition": "nope", "burst_size": 2}), 404, "not_found"),
        (json!({"definition": "hello", "version": 9, "burst_size": 2}), 404, "not_found"),
        (json!({"definition": "hello", "inputs": []}), 400, "bad_inputs"),
        (json!({"definition": "hello", "inputs": vec![Value::Null; 100_001]}), 400, "bad_inputs"),
        (json!({"definition": "hello", "inputs": [1], "burst_size": 1}), 400, "bad_inputs"),
        (json!({"definition": "hello"}), 400, "bad_inputs"),
        (json!({"definition": "hello", "burst_size": 0}), 400, "bad_burst_size"),
        (json!({"definition": "hello", "burst_size": 4, "granularity": 0}), 400, "bad_granularity"),
        (json!({"definition": "hello", "burst_size": 4, "granularity": 5}), 400, "bad_granularity"),
        (json!({"definition": "hello", "burst_size": 4, "packing": "dense"}), 400, "bad_packing"),
        (json!({"definition": "hello", "burst_size": 4, "backend": "carrier-pigeon"}), 400, "bad_backend"),
        (json!({"definition": "hello", "burst_size": 4, "deadline_ms": 0}), 400, "bad_deadline"),
        (json!({"definition": "hello", "burst_size": 4, "limits": {"memory_bytes": 0}}), 400, "bad_limits"),
        (json!({"definition": "hello", "burst_size": 4, "limits": {"bogus": 1}}), 400, "bad_limits"),
        (json!({"definition": "hello", "burst_size": 4, "wat": 1}), 400, "invalid_json"),
        (json!({"definition": "hello", "burst_size": 9}), 422, "never_fits"),
        (json!({"definition": "hello", "burst_size": 16, "granularity": 8, "backend": "redis"}), 422, "never_fits"),
    ];
    for (request, status, code) in flare_cases {
        let (got, body) = api.post("/v1/flares", &request).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{request}: {body}");
    }
    let (status, body) = api.send(api.request(reqwest::Method::POST, "/v1/flares").body("{not json")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));
    let huge = json!({"definition": "hello", "burst_size": 1, "input": "x".repeat(2 << 20)});
    let (status, body) = api.post("/v1/flares", &huge).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("body_too_large")), "{body}");
    let (status, body) = api.send(api.request(reqwest::Method::PUT, "/v1/flares")).await;
    assert_eq!((status, body["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    assert_eq!(api.get("/v1/flares").await.1, json!([]));
    assert_eq!(api.get("/v1/flares/f-nope").await.1["code"], "not_found");
    assert_eq!(api.get("/v1/nowhere").await.1["code"], "no_route");
}

#[tokio::test]
async fn a_flare_that_fits_later_waits_in_the_queue_then_runs() {
    let controller = Controller::start(&["--slots", "4"], &[]);
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    api.deploy_guest("hello", "hello").await;
    let blocker = json!({"definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 4000});
    let (status, first) = api.post("/v1/flares", &blocker).await;
    assert_eq!((status, first["status"].as_str()), (202, Some("running")), "{first}");
    let (status, second) = api.post("/v1/flares", &json!({"definition": "hello", "burst_size": 3})).await;
    assert_eq!((status, second["status"].as_str()), (202, Some("queued")), "{second}");
    let second_id = second["flare_id"].as_str().expect("id");
    assert_eq!(api.get(&format!("/v1/flares/{second_id}/results")).await.1["code"], "not_finished");
    let (_, health) = api.get("/health").await;
    assert_eq!((health["free_slots"].as_u64(), health["queued"].as_u64()), (Some(0), Some(1)));

    let blocked = api.wait_final(first["flare_id"].as_str().expect("id")).await;
    assert_eq!(blocked["status"], "failed");
    assert_eq!(blocked["failure"]["kind"], "deadline");
    let ran = api.wait_final(second_id).await;
    assert_eq!(ran["status"], "succeeded", "{ran}");
    assert!(ran["started_us"].as_u64() >= blocked["finished_us"].as_u64());
    let (_, list) = api.get("/v1/flares").await;
    let ids: Vec<&str> = list.as_array().expect("list").iter().filter_map(|f| f["flare_id"].as_str()).collect();
    assert_eq!(ids, [first["flare_id"].as_str().expect("id"), second_id]);
}

#[tokio::test]
async fn a_restart_keeps_definitions_and_results_and_retention_prunes_them() {
    let mut controller = Controller::start(&["--slots", "8", "--retention-secs", "15"], &[]);
    let api = controller.api(None);
    let deployed = api.deploy_guest("hello", "hello").await;
    let results = api.flare_wait(json!({"definition": "hello", "burst_size": 2})).await;
    let id = results["flare_id"].as_str().expect("id").to_owned();
    controller.restart();
    let api = controller.api(None);
    assert_eq!(api.get("/v1/definitions/hello").await.1, deployed);
    assert_eq!(api.get(&format!("/v1/flares/{id}/results")).await.1, results);
    // The component is loaded from the store for the next flare.
    let again = api.flare_wait(json!({"definition": "hello", "burst_size": 3})).await;
    check_hello(&again, 3, |_| 0);
    // Past the retention, finished flares are gone; definitions stay.
    tokio::time::sleep(Duration::from_secs(23)).await;
    assert_eq!(api.get(&format!("/v1/flares/{id}")).await.0, 404);
    assert_eq!(api.get("/v1/flares").await.1, json!([]));
    assert_eq!(api.get("/v1/definitions/hello").await.0, 200);
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_flare_with_a_backend_error_and_frees_its_slots() {
    let controller = Controller::start(&["--slots", "8", "--redis-url", "redis://127.0.0.1:1"], &[]);
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let results =
        api.flare_wait(json!({"definition": "hello", "burst_size": 4, "granularity": 2, "backend": "redis"})).await;
    assert_eq!(results["status"], "failed");
    assert_eq!(results["failure"]["kind"], "backend");
    let message = results["failure"]["message"].as_str().expect("a message");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert_eq!(api.get("/health").await.1["free_slots"], 8);
}

#[tokio::test]
async fn a_queued_or_running_flare_is_cancelled_and_its_slots_come_back() {
    let controller = Controller::start(&["--slots", "4"], &[]);
    let api = controller.api(None);
    api.deploy_guest("fixtures", "burst_fixtures").await;
    api.deploy_guest("hello", "hello").await;
    // Worker 1 computes forever and the others wait for it: only a cancel
    // (or its deadline, far away) ends this flare.
    let spinner = json!({"definition": "fixtures", "burst_size": 4, "granularity": 2,
        "input": {"scenario": "hostile_spin", "victim": 1}, "deadline_ms": 300_000});
    let (status, running) = api.post("/v1/flares", &spinner).await;
    assert_eq!((status, running["status"].as_str()), (202, Some("running")), "{running}");
    let (status, queued) = api.post("/v1/flares", &json!({"definition": "hello", "burst_size": 4})).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
    for flare in [&queued, &running] {
        let path = format!("/v1/flares/{}", flare["flare_id"].as_str().expect("id"));
        let (status, doc) = api.delete(&path).await;
        let got = (status, doc["status"].as_str(), doc["failure"]["kind"].as_str());
        assert_eq!(got, (200, Some("failed"), Some("cancelled")), "{doc}");
        let (status, body) = api.delete(&path).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("already_finished")), "{body}");
        let (_, results) = api.get(&format!("{path}/results")).await;
        assert_eq!(results["failure"]["kind"], "cancelled", "{results}");
    }
    // The spinner's workers stop and its slots come back.
    let freed = async {
        while api.get("/health").await.1["free_slots"] != 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), freed).await.expect("the cancelled flare's slots come back");
    let results = api.flare_wait(json!({"definition": "hello", "burst_size": 4})).await;
    check_hello(&results, 4, |_| 0);
    assert_eq!(api.delete("/v1/flares/f-nope").await.1["code"], "not_found");
}

#[tokio::test]
async fn lists_come_a_page_at_a_time_and_quotas_bound_what_a_tenant_keeps() {
    let controller = Controller::start(&["--slots", "8", "--max-definitions", "3", "--max-versions", "2"], &[]);
    let api = controller.api(None);
    for name in ["a", "b", "c"] {
        api.deploy_guest(name, "hello").await;
    }
    let (status, body) = api.deploy("d", hello_wasm(), "").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("definition_limit")), "{body}");
    assert_eq!(api.deploy("a", hello_wasm(), "?granularity=2").await.0, 201);
    let (status, body) = api.deploy("a", hello_wasm(), "?granularity=3").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("version_limit")), "{body}");

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(api.flare_wait(json!({"definition": "b", "burst_size": 1})).await["flare_id"].clone());
    }
    for (path, key, all) in
        [("/v1/definitions", "name", vec![json!("a"), json!("b"), json!("c")]), ("/v1/flares", "flare_id", ids)]
    {
        let first = api.request(reqwest::Method::GET, &format!("{path}?limit=2")).send().await.expect("answers");
        let link = first.headers().get("link").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let first: Vec<Value> = first.json().await.expect("JSON");
        assert_eq!(first.iter().map(|item| item[key].clone()).collect::<Vec<_>>(), all[0..2], "{path}");
        let after = all[1].as_str().expect("a key");
        assert_eq!(link.as_deref(), Some(format!("<{path}?limit=2&after={after}>; rel=\"next\"").as_str()));
        let next = api.request(reqwest::Method::GET, &format!("{path}?limit=2&after={after}")).send().await;
        let next = next.expect("answers");
        assert!(next.headers().get("link").is_none(), "{path}: the last page links nowhere");
        let next: Vec<Value> = next.json().await.expect("JSON");
        assert_eq!(next.iter().map(|item| item[key].clone()).collect::<Vec<_>>(), all[2..], "{path}");
        let (status, body) = api.get(&format!("{path}?limit=0")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    }
}

#[tokio::test]
async fn a_retried_flare_request_with_its_idempotency_key_starts_no_second_flare() {
    let controller = Controller::start(&["--slots", "8"], &[]);
    let api = controller.api(None);
    let deploy = api.request(reqwest::Method::POST, "/v1/definitions/hello").body(hello_wasm());
    let deployed = deploy.send().await.expect("answers");
    assert_eq!(deployed.status(), 201);
    assert_eq!(deployed.headers()["location"], "/v1/definitions/hello");
    let request = json!({"definition": "hello", "burst_size": 2});
    let post = |key: &'static str| {
        let api = api.clone();
        let request = request.clone();
        async move {
            let response =
                api.request(reqwest::Method::POST, "/v1/flares").header("Idempotency-Key", key).json(&request);
            let response = response.send().await.expect("answers");
            assert_eq!(response.status(), 202);
            let location = response.headers()["location"].to_str().expect("ascii").to_owned();
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(location, format!("/v1/flares/{}", body["flare_id"].as_str().expect("id")));
            body["flare_id"].as_str().expect("id").to_owned()
        }
    };
    let first = post("order-42").await;
    // Every answer names its request: a fresh id, or the client's own.
    let answered = api.request(reqwest::Method::GET, "/v1/flares").send().await.expect("answers");
    let id = answered.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert_eq!((id.len(), id.matches('-').count()), (36, 4), "a UUID: {id}");
    let traced = api.request(reqwest::Method::GET, "/v1/flares").header("x-request-id", "trace-me-1").send().await;
    assert_eq!(traced.expect("answers").headers()["x-request-id"], "trace-me-1");
    assert_eq!(post("order-42").await, first, "the retry answers the first flare");
    assert_ne!(post("order-43").await, first, "another key starts another flare");
    let (status, body) = api
        .send(api.request(reqwest::Method::POST, "/v1/flares").header("Idempotency-Key", "has space").json(&request))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_idempotency_key")), "{body}");
    assert_eq!(api.get("/v1/flares").await.1.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_idempotency_key_whose_flare_was_pruned_starts_a_new_flare() {
    // The key once pointed at a flare the retention had deleted: a 500.
    let controller = Controller::start(&["--slots", "8", "--retention-secs", "1"], &[]);
    let api = controller.api(None);
    api.deploy_guest("hello", "hello").await;
    let post = || {
        let request = json!({"definition": "hello", "burst_size": 2, "wait": true});
        api.send(api.request(reqwest::Method::POST, "/v1/flares").header("Idempotency-Key", "nightly").json(&request))
    };
    let (status, first) = post().await;
    assert_eq!(status, 200, "{first}");
    let path = format!("/v1/flares/{}", first["flare_id"].as_str().expect("id"));
    let pruned = async {
        while api.get(&path).await.0 != 404 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), pruned).await.expect("the flare is pruned");
    let (status, second) = post().await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["flare_id"], first["flare_id"]);
}
