//! The `burst` CLI against `burst serve`: deploy, flare (with and without
//! --wait), status, results and list, as the README shows them.

use std::process::Command;

use serde_json::Value;

use crate::controller::{Controller, TempDir};
use crate::support::guest_path;

fn burst(controller: &Controller) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burst"));
    command.env("BURST_URL", &controller.url).env_remove("BURST_TOKEN");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("burst runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn deploy_flare_wait_status_results_and_list() {
    let controller = Controller::start(&["--slots", "16"], &[]);
    let (code, out, err) = run(burst(&controller).args(["deploy", "hello"]).arg(guest_path("hello")));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("deployed hello version 1 ("), "{out}");

    let (code, out, err) = run(burst(&controller).args(["flare", "hello", "--workers", "8", "-g", "4", "--wait"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8 of 8 workers in 2 packs of up to 4 succeeded"), "{out}");
    assert!(out.contains("\"sum_of_ids\":28"), "{out}");
    assert!(err.contains("succeeded (8/8 workers started, 8 finished)"), "{err}");

    let dir = TempDir::new("burst-cli-inputs");
    let inputs = dir.0.join("inputs.json");
    std::fs::write(
        &inputs,
        r#"[{"scenario": "fail_guest_error", "victim": 1}, {"scenario": "fail_guest_error", "victim": 1}]"#,
    )
    .expect("write");
    let (code, id, err) = run(burst(&controller).args(["deploy", "fixtures"]).arg(guest_path("burst_fixtures")));
    assert_eq!(code, 0, "{err} {id}");
    let (code, id, err) = run(burst(&controller).args(["flare", "fixtures", "--inputs-file"]).arg(&inputs));
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    assert!(id.starts_with("f-"), "{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, out, err) = run(burst(&controller).args(["status", &id]));
        assert_eq!(code, 0, "{err}");
        if out.contains(": failed (") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, out, err) = run(burst(&controller).args(["results", &id, "--json"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("worker 1: guest_error: worker 1 gives up"), "{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON results");
    assert_eq!(doc["failure"]["worker_id"], 1);

    let (code, out, err) = run(burst(&controller).arg("list"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello") && out.contains("fixtures") && out.contains(&id), "{out}");
    let (code, _, err) = run(burst(&controller).args(["flare", "hello", "-n", "2", "--memory-limit", "0"]));
    assert_eq!(code, 2);
    assert!(err.contains("limit `memory_bytes` must not be 0 (bad_limits, HTTP 400"), "{err}");
    let (code, _, err) = run(burst(&controller).args(["status", "f-missing"]));
    assert_eq!(code, 2);
    assert!(err.contains("not_found"), "{err}");
}
