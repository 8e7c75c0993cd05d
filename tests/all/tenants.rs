//! Tenants: tokens map to tenants, each sees only its own definitions and
//! flares (others' are 404), requests without a valid token are 401, and
//! host routes take only the cluster token.

use serde_json::json;

use crate::controller::Controller;

#[tokio::test]
async fn each_tenant_sees_and_runs_only_its_own_and_tokens_are_required() {
    let tokens_file = crate::controller::TempDir::new("burst-tokens");
    let file = tokens_file.0.join("tokens");
    std::fs::write(&file, "# tenant b\nb:token-b\n").expect("write tokens");
    let controller = Controller::start(
        &["--slots", "8", "--tokens-file", file.to_str().expect("utf-8")],
        &[("BURST_TOKENS", "a:token-a"), ("BURST_CLUSTER_TOKEN", "cluster-secret")],
    );
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    a.deploy_guest("hello", "hello").await;
    let results = a.flare_wait(json!({"definition": "hello", "burst_size": 2})).await;
    let id = results["flare_id"].as_str().expect("id");

    // Another tenant: 404 on everything of a's, and empty lists.
    for path in ["/v1/definitions/hello".to_owned(), format!("/v1/flares/{id}"), format!("/v1/flares/{id}/results")] {
        let (status, body) = b.get(&path).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    assert_eq!(b.delete(&format!("/v1/flares/{id}")).await.1["code"], "not_found");
    assert_eq!(a.delete(&format!("/v1/flares/{id}")).await.1["code"], "already_finished");
    assert_eq!(b.get("/v1/definitions").await.1, json!([]));
    assert_eq!(b.get("/v1/flares").await.1, json!([]));
    assert_eq!(b.post("/v1/flares", &json!({"definition": "hello", "burst_size": 1})).await.0, 404);
    assert_eq!(b.delete("/v1/definitions/hello").await.0, 404);
    // The same name is b's own once b deploys it.
    b.deploy_guest("hello", "hello").await;
    assert_eq!(b.get("/v1/definitions/hello").await.1["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.get("/v1/flares").await.1.as_array().map(Vec::len), Some(1));

    // No token, a wrong token, or the cluster token: 401 on tenant routes.
    for api in [controller.api(None), controller.api(Some("wrong")), controller.api(Some("cluster-secret"))] {
        for path in ["/v1/definitions", "/v1/flares", "/v1/definitions/hello"] {
            let (status, body) = api.get(path).await;
            assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{path}");
        }
        assert_eq!(api.post("/v1/flares", &json!({"definition": "hello", "burst_size": 1})).await.0, 401);
    }
    // Host routes: only the cluster token.
    let register = json!({"name": "intruder", "slots": 4});
    assert_eq!(a.post("/v1/hosts", &register).await.1["code"], "unauthorized");
    assert_eq!(controller.api(None).post("/v1/hosts", &register).await.0, 401);
    assert_eq!(a.get("/v1/components/00").await.0, 401);
    let (status, registered) = controller.api(Some("cluster-secret")).post("/v1/hosts", &register).await;
    assert_eq!(status, 201, "{registered}");
    // Health needs no token.
    assert_eq!(controller.api(None).get("/health").await.1["hosts"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn one_tenant_filling_its_share_of_the_queue_does_not_refuse_another() {
    // Four queued flares of one tenant once filled a queue of four, and the
    // next tenant's flare was refused `queue_full`.
    let controller = Controller::start(
        &["--slots", "4", "--queue-limit", "4", "--tenant-queue-limit", "2"],
        &[("BURST_TOKENS", "a:token-a,b:token-b")],
    );
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    a.deploy_guest("fixtures", "burst_fixtures").await;
    b.deploy_guest("hello", "hello").await;
    let blocker = json!({"definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 2000});
    let mut a_flares = Vec::new();
    for expected in ["running", "queued", "queued"] {
        let (status, flare) = a.post("/v1/flares", &blocker).await;
        assert_eq!((status, flare["status"].as_str()), (202, Some(expected)), "{flare}");
        a_flares.push(flare["flare_id"].as_str().expect("id").to_owned());
    }
    let (status, body) = a.post("/v1/flares", &blocker).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("tenant_queue_full")), "{body}");
    let (status, queued) = b.post("/v1/flares", &json!({"definition": "hello", "burst_size": 4})).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
    for id in &a_flares {
        assert_eq!(a.delete(&format!("/v1/flares/{id}")).await.0, 200);
    }
    let done = b.wait_final(queued["flare_id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

/// Polls a flare until its status is `status`.
async fn wait_status(api: &crate::controller::Api, flare_id: &str, status: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let (_, doc) = api.get(&format!("/v1/flares/{flare_id}")).await;
        if doc["status"] == status {
            return doc;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "flare {flare_id} never {status}: {doc}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tenants_take_turns_in_the_queue() {
    // With one FIFO, a tenant's backlog ran entirely before another
    // tenant's flare queued behind it.
    let controller = Controller::start(&["--slots", "4"], &[("BURST_TOKENS", "a:token-a,b:token-b")]);
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    a.deploy_guest("fixtures", "burst_fixtures").await;
    b.deploy_guest("hello", "hello").await;
    let blocker = json!({"definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 60000});
    let mut ids = Vec::new();
    for expected in ["running", "queued", "queued"] {
        let (status, flare) = a.post("/v1/flares", &blocker).await;
        assert_eq!((status, flare["status"].as_str()), (202, Some(expected)), "{flare}");
        ids.push(flare["flare_id"].as_str().expect("id").to_owned());
    }
    let (status, b_flare) = b.post("/v1/flares", &json!({"definition": "hello", "burst_size": 4})).await;
    assert_eq!((status, b_flare["status"].as_str()), (202, Some("queued")), "{b_flare}");
    // a's first queued flare had the first turn; then it is b's.
    assert_eq!(a.delete(&format!("/v1/flares/{}", ids[0])).await.0, 200);
    wait_status(&a, &ids[1], "running").await;
    assert_eq!(a.delete(&format!("/v1/flares/{}", ids[1])).await.0, 200);
    let b_done = b.wait_final(b_flare["flare_id"].as_str().expect("id")).await;
    assert_eq!(b_done["status"], "succeeded", "{b_done}");
    let (_, last) = a.get(&format!("/v1/flares/{}", ids[2])).await;
    let (b_started, last_started) = (b_done["started_us"].as_u64(), last["started_us"].as_u64());
    assert!(last_started.is_none_or(|at| Some(at) > b_started), "a's last flare started first: {last} {b_done}");
    assert_eq!(a.delete(&format!("/v1/flares/{}", ids[2])).await.0, 200);
}

#[tokio::test]
async fn a_tenant_at_its_worker_bound_waits_while_others_pass() {
    let controller =
        Controller::start(&["--slots", "8", "--tenant-worker-limit", "4"], &[("BURST_TOKENS", "a:token-a,b:token-b")]);
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    a.deploy_guest("fixtures", "burst_fixtures").await;
    b.deploy_guest("hello", "hello").await;
    let blocker = json!({"definition": "fixtures", "burst_size": 4, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 60000});
    let mut ids = Vec::new();
    // Four slots are free for a's second flare, but a runs four workers.
    for expected in ["running", "queued"] {
        let (status, flare) = a.post("/v1/flares", &blocker).await;
        assert_eq!((status, flare["status"].as_str()), (202, Some(expected)), "{flare}");
        ids.push(flare["flare_id"].as_str().expect("id").to_owned());
    }
    // b passes a's queued flare.
    let results = b.flare_wait(json!({"definition": "hello", "burst_size": 4})).await;
    crate::controller::check_hello(&results, 4, |_| 0);
    let (status, body) = a.post("/v1/flares", &json!({"definition": "fixtures", "burst_size": 5})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("never_fits")), "{body}");
    // Once a's first flare ends, its second starts.
    assert_eq!(a.delete(&format!("/v1/flares/{}", ids[0])).await.0, 200);
    wait_status(&a, &ids[1], "running").await;
    assert_eq!(a.delete(&format!("/v1/flares/{}", ids[1])).await.0, 200);
}

#[tokio::test]
async fn a_deploy_never_reads_what_another_tenant_compiled() {
    // The artifact cache once answered any tenant's deploy of known bytes,
    // 40× faster than a compile: an oracle for what others deployed. Here
    // the cache holds another component under `hello`'s name, which only a
    // deploy that reads the cache would run.
    let controller = Controller::start(&["--slots", "4"], &[("BURST_TOKENS", "a:token-a,b:token-b")]);
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    let fixtures = std::fs::read(crate::support::guest_path("burst_fixtures")).expect("built");
    // A tenant's second deploy of its own bytes uses the cache and fills it.
    for query in ["", "?granularity=2"] {
        assert!(matches!(a.deploy("fixtures", fixtures.clone(), query).await.0, 200 | 201));
    }
    let artifacts = controller.data_dir().join("artifacts");
    let artifact = std::fs::read_dir(&artifacts).expect("artifacts").flatten().next().expect("one artifact").path();
    let name = artifact.file_name().and_then(|n| n.to_str()).expect("a name").to_owned();
    let suffix = &name[name.find('-').expect("digest-engine")..];
    let hello = std::fs::read(crate::support::guest_path("hello")).expect("built");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&hello));
    std::fs::copy(&artifact, artifacts.join(format!("{digest}{suffix}"))).expect("plant");
    let (status, body) = b.deploy("hello", hello, "").await;
    assert_eq!(status, 201, "{body}");
    let results = b.flare_wait(json!({"definition": "hello", "burst_size": 4})).await;
    crate::controller::check_hello(&results, 4, |_| 0);
}
