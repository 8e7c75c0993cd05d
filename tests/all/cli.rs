//! The `burst` binary: `burst run` end to end.

use std::process::Command;

use serde_json::Value;

use crate::support::guest_path;

fn burst() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burst"));
    command.env("BURST_CACHE_DIR", std::env::temp_dir().join(format!("burst-cli-cache-{}", std::process::id())));
    command
}

#[test]
fn run_hello_prints_every_output_as_json() {
    let hello = guest_path("hello");
    let out = burst()
        .args(["run", "--workers", "8", "--granularity", "4", "--json"])
        .arg(&hello)
        .output()
        .expect("burst runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["burst_size"], 8);
    assert_eq!(doc["granularity"], 4);
    assert_eq!(doc["status"], "succeeded");
    let outputs = doc["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 8);
    for (id, output) in (0..8u64).zip(outputs) {
        assert_eq!(output["worker_id"], id);
        assert_eq!(output["sum_of_ids"], 28);
        assert_eq!(output["pack_id"], id / 4);
        assert_eq!(doc["workers"][id as usize]["pack_id"], id / 4);
        assert!(doc["workers"][id as usize]["end_us"].as_u64() >= doc["workers"][id as usize]["start_us"].as_u64());
    }
    // Two ring messages of one byte cross packs (3→4, 7→0), and the
    // all-reduce of one u64 crosses twice (up to pack 0, back to pack 1).
    assert_eq!(doc["bytes"]["remote"], 2 + 2 * 8);
}

#[test]
fn a_failed_worker_makes_the_exit_status_nonzero_and_is_named() {
    let out = burst()
        .args(["run", "--workers", "3", "--input", r#"{"scenario": "fail_guest_error", "victim": 2}"#])
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("burst runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("worker 2: guest_error: worker 2 gives up"), "{stderr}");
}

#[test]
fn inputs_file_gives_one_input_per_worker_and_must_match_the_burst_size() {
    let dir = std::env::temp_dir().join(format!("burst-cli-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let inputs = dir.join("inputs.json");
    std::fs::write(&inputs, r#"[{"scenario": "comm_self_and_tags"}, {"scenario": "comm_self_and_tags"}]"#)
        .expect("write");
    let ok = burst()
        .args(["run", "-n", "2", "--json", "--inputs-file"])
        .arg(&inputs)
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("runs");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let doc: Value = serde_json::from_slice(&ok.stdout).expect("JSON");
    assert_eq!(doc["outputs"][1], serde_json::json!(["tag two", "tag one", "0 bytes"]));
    let bad = burst()
        .args(["run", "-n", "3", "--inputs-file"])
        .arg(&inputs)
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("holds 2 inputs, but --workers is 3"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = burst().args(["run", "-n", "4", "-g", "5"]).arg(guest_path("hello")).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("granularity 5 must be between 1 and the burst size 4"));
    let out = burst().args(["run", "-n", "2", "--input", "{not json"]).arg(guest_path("hello")).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

#[test]
fn sandbox_flags_set_the_limits_and_the_granted_directory() {
    let bomb = burst()
        .args(["run", "--workers", "2", "--json", "--memory-limit", "33554432"])
        .args(["--input", r#"{"scenario": "hostile_memory_bomb", "victim": 1}"#])
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("burst runs");
    assert_eq!(bomb.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&bomb.stdout).expect("one JSON document");
    assert_eq!(doc["failure"]["kind"], "memory_limit");
    assert_eq!(doc["failure"]["worker_id"], 1);

    let dir = std::env::temp_dir().join(format!("burst-cli-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("table.csv"), "a,b\n1,2\n").expect("write");
    let read = burst()
        .args(["run", "--workers", "1", "--json", "--output-limit", "5", "--read-only-dir"])
        .arg(&dir)
        .args(["--input", r#"{"scenario": "hostile_files", "read": ["/data/table.csv"], "write": ["/data/x"]}"#])
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("burst runs");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let doc: Value = serde_json::from_slice(&read.stdout).expect("one JSON document");
    assert_eq!(doc["outputs"][0], serde_json::json!(["ok:a,b\n1,2\n", "denied"]));
    std::fs::remove_dir_all(&dir).expect("clean up");

    let above_cap = burst()
        .args(["run", "--workers", "1", "--output-limit", "999999999"])
        .arg(guest_path("burst_fixtures"))
        .output()
        .expect("burst runs");
    assert_eq!(above_cap.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&above_cap.stderr);
    assert!(stderr.contains("limit `output_bytes` is 999999999, above its cap of 16777216"), "{stderr}");
}
