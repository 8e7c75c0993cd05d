//! The hostile-guest suite: one worker of a flare of four (two packs)
//! attacks the sandbox while its peers wait for it. Each attack runs with
//! every pack in this process and with the packs talking through the real
//! Redis; each must fail its flare with the exact kind and worker, end every
//! worker within a second, leave nothing in the broker, and leave the
//! runtime able to run the next flare.

use std::time::{Duration, Instant};

use burst_host::comm::BrokerKind;
use burst_host::{FailureKind, FlareResult, FlareSpec, Limits, LoadError, OutputDir, PackLayout, Program};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::brokers::{connect_all, leftovers, options, unique_flare_id};
use crate::failures::{assert_failed, still_healthy};
use crate::support::{fixtures, guest_path, hello, microbench, outputs, runtime};

const WORKERS: u32 = 4;
const GRANULARITY: u32 = 2;

/// Where the packs of a provoked flare run.
#[derive(Clone, Copy, Debug)]
enum Packs {
    InProcess,
    ThroughRedis,
}

const PACKS: [Packs; 2] = [Packs::InProcess, Packs::ThroughRedis];

/// A flare of the fixtures with `input` on every worker.
fn spec(input: &Value, limits: Limits, deadline: Duration) -> FlareSpec {
    let layout = PackLayout::homogeneous(WORKERS, GRANULARITY).expect("valid layout");
    let input = Bytes::from(serde_json::to_vec(input).expect("JSON"));
    let mut spec = FlareSpec::new(unique_flare_id("hostile"), layout.into(), vec![input; WORKERS as usize], deadline);
    spec.limits = limits;
    spec
}

/// Runs `spec` on the fixtures where `packs` says; through Redis, checks
/// that nothing of the flare is left in it.
async fn provoke_spec(packs: Packs, mut spec: FlareSpec) -> FlareResult {
    match packs {
        Packs::InProcess => burst_host::run_flare(runtime(), fixtures(), &spec).await.expect("valid spec"),
        Packs::ThroughRedis => {
            let options = options(BrokerKind::Redis, BrokerKind::Redis.default_url(), 1 << 20, spec.deadline);
            let (connected, backends) = connect_all(&options, WORKERS, GRANULARITY).await;
            spec.flare_id = connected.flare_id;
            let result = burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await.expect("valid spec");
            let left = leftovers(BrokerKind::Redis, &spec.flare_id, WORKERS / GRANULARITY).await;
            assert_eq!(left, Vec::<String>::new(), "the failed flare left state in Redis");
            result
        }
    }
}

async fn provoke(packs: Packs, input: Value, limits: Limits, deadline: Duration) -> FlareResult {
    provoke_spec(packs, spec(&input, limits, deadline)).await
}

/// Asserts the flare failed because of `worker` with `kind` and that every
/// worker ended within a second of the failure; then runs a healthy flare.
async fn assert_contained(result: &FlareResult, worker: u32, kind: FailureKind, message: &str) {
    assert_failed(result, Some(worker), kind, message);
    still_healthy().await;
}

#[tokio::test]
async fn a_loop_that_never_calls_the_host_is_stopped_at_the_deadline() {
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_spin", "victim": 3 });
        let started = Instant::now();
        let result = provoke(packs, input, Limits::default(), Duration::from_millis(500)).await;
        assert_contained(&result, 3, FailureKind::Deadline, "while the worker was computing").await;
        assert!(started.elapsed() < Duration::from_secs(3), "{packs:?}: took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_worker_looping_in_recv_is_named_at_the_deadline() {
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_recv_loop", "victim": 1 });
        let result = provoke(packs, input, Limits::default(), Duration::from_millis(300)).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.worker_id, failure.kind), (Some(1), FailureKind::Deadline), "{packs:?}: {failure}");
        assert!(failure.message.contains("waiting in a comm call"), "{failure}");
        for worker in result.workers.iter().filter(|w| w.worker_id != 1) {
            assert_eq!(worker.outcome.as_deref(), Ok(&b"[]"[..]), "{packs:?}: worker {}", worker.worker_id);
        }
        assert!(result.workers[1].end_us <= failure.at_us + 1_000_000);
        still_healthy().await;
    }
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let limits = Limits { memory_bytes: 64 << 20, ..Limits::default() };
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_memory_bomb", "victim": 2 });
        let result = provoke(packs, input, limits, Duration::from_secs(30)).await;
        assert_contained(&result, 2, FailureKind::MemoryLimit, "above the limit of 67108864").await;
    }
}

#[tokio::test]
async fn unbounded_recursion_traps_on_stack_exhaustion() {
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_stack_overflow", "victim": 0 });
        let result = provoke(packs, input, Limits::default(), Duration::from_secs(30)).await;
        // Rust keeps its stack in linear memory below the data: overflowing
        // it leaves the memory, before wasmtime's own call-stack limit.
        assert_contained(&result, 0, FailureKind::Trap, "out of bounds memory access").await;
    }
}

#[tokio::test]
async fn a_panic_in_a_collective_through_redis_is_contained() {
    let input = json!({ "scenario": "fail_panic_in_collective", "victim": 3 });
    let result = provoke(Packs::ThroughRedis, input, Limits::default(), Duration::from_secs(30)).await;
    assert_contained(&result, 3, FailureKind::Trap, "worker 3 panics on purpose").await;
}

#[tokio::test]
async fn a_send_above_the_message_limit_fails_the_flare() {
    let limits = Limits { message_bytes: 1 << 20, ..Limits::default() };
    for packs in PACKS {
        // Exactly at the limit is allowed: worker 0 never receives it, and the flare succeeds.
        let at_limit = json!({ "scenario": "hostile_huge_send", "victim": 2, "bytes": 1 << 20 });
        outputs(&provoke(packs, at_limit, limits, Duration::from_secs(30)).await);
        let above = json!({ "scenario": "hostile_huge_send", "victim": 2, "bytes": (1 << 20) + 1 });
        let result = provoke(packs, above, limits, Duration::from_secs(30)).await;
        let message = "tried to send a message of 1048577 bytes; the limit is 1048576";
        assert_contained(&result, 2, FailureKind::MessageLimit, message).await;
    }
}

#[tokio::test]
async fn flooding_a_worker_that_does_not_receive_hits_the_buffered_limit() {
    let limits = Limits { buffered_bytes: 1 << 20, ..Limits::default() };
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_flood", "victim": 3 });
        let result = provoke(packs, input, limits, Duration::from_secs(30)).await;
        // 16 messages of 64 KiB, each with its overhead: the 16th is refused.
        let message = "sent worker 0 more than it received: 1050624 bytes would wait in the host, the limit is 1048576";
        assert_contained(&result, 3, FailureKind::MessageLimit, message).await;
    }
}

#[tokio::test]
async fn a_flood_of_empty_messages_hits_the_buffered_limit_too() {
    let limits = Limits { buffered_bytes: 1 << 20, ..Limits::default() };
    for packs in PACKS {
        let input = json!({ "scenario": "hostile_flood", "victim": 3, "bytes": 0 });
        let result = provoke(packs, input, limits, Duration::from_secs(30)).await;
        // Each stored message costs its overhead: the 8193rd is refused.
        let overhead = burst_host::comm::MESSAGE_OVERHEAD;
        let message = format!(
            "sent worker 0 more than it received: {} bytes would wait in the host, the limit is 1048576",
            8193 * overhead
        );
        assert_contained(&result, 3, FailureKind::MessageLimit, &message).await;
    }
}

#[tokio::test]
async fn a_worker_cycling_through_tags_is_refused_past_the_channel_cap() {
    let input = json!({ "scenario": "hostile_tags", "victim": 1 });
    let result = provoke(Packs::InProcess, input, Limits::default(), Duration::from_secs(60)).await;
    let message = format!("at most {} distinct (worker, tag) channels", burst_host::comm::MAX_CHANNELS);
    assert_contained(&result, 1, FailureKind::GuestError, &message).await;
}

#[tokio::test]
async fn a_reduction_over_many_packs_is_not_charged_to_one_leader() {
    // Pack 0's leader takes a 1 MiB partial from each of 7 packs per call:
    // 7 MiB waiting at once, while no sender has more than 1 MiB waiting.
    let limits = Limits { buffered_bytes: 2 << 20, ..Limits::default() };
    let input = Bytes::from(json!({"primitive": "all-reduce", "size": 1 << 20, "iterations": 3}).to_string());
    for packs in PACKS {
        let layout = PackLayout::homogeneous(8, 1).expect("valid layout");
        let mut spec =
            FlareSpec::new(unique_flare_id("reduce"), layout.into(), vec![input.clone(); 8], Duration::from_secs(60));
        spec.limits = limits;
        let result = match packs {
            Packs::InProcess => burst_host::run_flare(runtime(), microbench(), &spec).await.expect("valid spec"),
            Packs::ThroughRedis => {
                let options = options(BrokerKind::Redis, BrokerKind::Redis.default_url(), 1 << 20, spec.deadline);
                let (connected, backends) = connect_all(&options, 8, 1).await;
                spec.flare_id = connected.flare_id;
                burst_host::run_flare_over(runtime(), microbench(), &spec, backends).await.expect("valid spec")
            }
        };
        for (worker, output) in (0..).zip(outputs(&result)) {
            assert_eq!(output["worker_id"], worker, "{packs:?}");
            assert_eq!(output["checked_bytes"], 3 << 20, "{packs:?}");
        }
    }
}

#[tokio::test]
async fn unbounded_stdout_is_truncated_and_marked_not_an_error() {
    let limits = Limits { output_bytes: 4096, ..Limits::default() };
    for (written, truncated) in [(100_000, true), (4096, false), (4095, false)] {
        let input = json!({ "scenario": "hostile_stdout", "bytes": written });
        let result = provoke(Packs::InProcess, input, limits, Duration::from_secs(30)).await;
        for (worker, output) in result.workers.iter().zip(outputs(&result)) {
            let wrote = output[0].as_str().expect("the text it wrote");
            assert_eq!(wrote.len(), written);
            assert!(wrote.starts_with(&format!("worker {} line 0\n", worker.worker_id)), "{wrote:.40}");
            assert_eq!(
                worker.stdout,
                wrote.as_bytes()[..written.min(4096)],
                "worker {} wrote {written}",
                worker.worker_id
            );
            assert_eq!((worker.stdout_truncated, worker.stderr_truncated), (truncated, false));
        }
    }
}

#[tokio::test]
async fn misuse_across_packs_is_the_same_typed_errors_as_in_one_process() {
    let input = json!({ "scenario": "comm_misuse" });
    let in_process =
        outputs(&provoke(Packs::InProcess, input.clone(), Limits::default(), Duration::from_secs(30)).await);
    let through_redis = outputs(&provoke(Packs::ThroughRedis, input, Limits::default(), Duration::from_secs(30)).await);
    assert_eq!(through_redis, in_process);
    assert_eq!(in_process[0][0], json!(format!("invalid-worker({WORKERS})")));
}

#[tokio::test]
async fn no_host_file_is_readable_without_a_grant() {
    let input = json!({ "scenario": "hostile_files", "read": ["/etc/passwd", "/data/anything", "."], "write": ["/tmp/planted"] });
    let result = provoke(Packs::InProcess, input, Limits::default(), Duration::from_secs(30)).await;
    assert_eq!(outputs(&result), vec![json!(["denied", "denied", "denied", "denied"]); WORKERS as usize]);
    assert!(!std::path::Path::new("/tmp/planted").exists());
}

#[tokio::test]
async fn a_granted_directory_is_readable_and_nothing_outside_or_writable() {
    let root = std::env::temp_dir().join(unique_flare_id("grant"));
    let granted = root.join("granted");
    std::fs::create_dir_all(granted.join("sub")).expect("temp dir");
    std::fs::write(granted.join("secret.txt"), "granted content 7f3a").expect("write");
    std::fs::write(root.join("outside.txt"), "outside content").expect("write");
    let input = json!({
        "scenario": "hostile_files",
        "read": ["/data/secret.txt", "/data/sub/../secret.txt", "/data/../outside.txt", "/etc/passwd"],
        "write": ["/data/planted.txt", "/data/../planted.txt"],
    });
    let mut spec = spec(&input, Limits::default(), Duration::from_secs(30));
    spec.read_only_dir = Some(granted.clone());
    let result = provoke_spec(Packs::InProcess, spec).await;
    let expected =
        json!(["ok:granted content 7f3a", "ok:granted content 7f3a", "denied", "denied", "denied", "denied"]);
    assert_eq!(outputs(&result), vec![expected; WORKERS as usize]);
    let mut left: Vec<_> = std::fs::read_dir(&root).expect("read").map(|e| e.expect("entry").file_name()).collect();
    left.sort();
    assert_eq!(left, ["granted", "outside.txt"], "the guest created a file");
    std::fs::remove_dir_all(&root).expect("clean up");
}

#[tokio::test]
async fn writes_past_the_output_quota_fail_in_the_guest_and_nothing_escapes_out() {
    const QUOTA: u64 = 1 << 20;
    const CHUNK: u32 = 48 << 10;
    let root = tempfile::tempdir().expect("temp dir");
    let out = root.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let input = json!({ "scenario": "hostile_fill_output", "chunk": CHUNK, "grow": 2 * QUOTA });
    let mut spec = spec(&input, Limits::default(), Duration::from_secs(30));
    let output = OutputDir::new(&out, QUOTA);
    spec.output = Some(output.clone());
    let result = provoke_spec(Packs::InProcess, spec).await;
    let mut total = 0;
    for (worker_id, attempts) in outputs(&result).into_iter().enumerate() {
        let attempts: Vec<String> = serde_json::from_value(attempts).expect("strings");
        let written: u64 = attempts[0].parse().expect("a count");
        // `std::fs` writes through a WASI stream, whose failure wasi-libc
        // reports as EIO; `set_len` is a descriptor call and gets EDQUOT.
        assert_eq!(attempts[1..], ["Uncategorized", "QuotaExceeded", "PermissionDenied"], "worker {worker_id}");
        let on_disk = std::fs::metadata(out.join(format!("worker-{worker_id}"))).expect("its file").len();
        assert_eq!(on_disk, written, "worker {worker_id}: a refused write left bytes behind");
        let grown = std::fs::metadata(out.join(format!("grown-{worker_id}"))).expect("created").len();
        assert_eq!(grown, 0, "worker {worker_id}: set_len grew a file past the quota");
        total += written;
    }
    assert!(total <= QUOTA && total > QUOTA - u64::from(WORKERS * CHUNK), "{total} bytes written under {QUOTA}");
    assert_eq!(output.quota.used(), total, "the quota counts exactly what was written");
    let mut left: Vec<_> =
        std::fs::read_dir(root.path()).expect("read").map(|e| e.expect("entry").file_name()).collect();
    left.sort();
    assert_eq!(left, ["out"], "a worker wrote outside /out");
}

#[tokio::test]
async fn a_component_that_imports_sockets_loads_and_reaches_nothing() {
    let wasm = std::fs::read(guest_path("burst_fixture_socket")).expect("built");
    let program = runtime().load(&wasm, None).expect("sockets are linked, denied");
    // Redis listens on this address: only the sandbox stands in the way.
    for (address, refused) in [
        ("127.0.0.1:6379", "refused: Permission denied (os error 2)"),
        ("localhost:6379", "refused: failed to lookup address information: Non-recoverable error"),
    ] {
        let layout = PackLayout::homogeneous(1, 1).expect("valid layout");
        let input = Bytes::from(serde_json::to_vec(&json!(address)).expect("JSON"));
        let spec = FlareSpec::new(unique_flare_id("socket"), layout.into(), vec![input], Duration::from_secs(30));
        let result = burst_host::run_flare(runtime(), &program, &spec).await.expect("valid spec");
        assert_eq!(outputs(&result), [json!(refused)], "{address}");
    }
}

/// A component importing `name` as an empty instance, and nothing else.
fn component_importing(name: &str) -> Vec<u8> {
    let mut wasm = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    // Type section: one instance type without declarations.
    wasm.extend([0x07, 0x03, 0x01, 0x42, 0x00]);
    // Import section: `name`, an instance of type 0.
    let mut import = vec![0x01, 0x00, name.len() as u8];
    import.extend(name.as_bytes());
    import.extend([0x05, 0x00]);
    wasm.push(0x0a);
    wasm.push(import.len() as u8);
    wasm.extend(import);
    wasm
}

#[tokio::test]
async fn a_component_that_imports_http_is_refused_naming_the_import() {
    for import in ["wasi:http/outgoing-handler@0.2.0", "example:other/thing"] {
        let error = runtime().load(&component_importing(import), None).err().expect("refused");
        let LoadError::ForbiddenImport(name) = &error else { panic!("wrong error: {error}") };
        assert_eq!(name, import);
        assert!(error.to_string().contains(import), "{error}");
    }
}

/// The time of a flare of `rounds` barriers, 8 workers in 2 packs.
async fn barriers(program: &Program, rounds: u32) -> Duration {
    let input = json!({ "scenario": "comm_barriers", "rounds": rounds });
    let layout = PackLayout::homogeneous(8, 4).expect("valid");
    let input = Bytes::from(serde_json::to_vec(&input).expect("JSON"));
    let spec = FlareSpec::new(unique_flare_id("steady"), layout.into(), vec![input; 8], Duration::from_secs(60));
    let started = Instant::now();
    let result = burst_host::run_flare(runtime(), program, &spec).await.expect("valid");
    assert_eq!(outputs(&result), vec![json!([rounds]); 8]);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_flare_does_not_stall_another_beyond_the_epoch_tick() {
    // Enough rounds that a flare's fixed costs (start, load, scheduling
    // noise of a loaded machine: ~15 ms) stay well under the allowance of
    // two ticks per round; at 50 rounds that noise alone failed the bound.
    const ROUNDS: u32 = 500;
    let tick = runtime().config().epoch_tick;
    let alone = barriers(fixtures(), ROUNDS).await;
    // Two flares spinning in every worker hold both cores until their deadline.
    let spin = json!({ "scenario": "hostile_spin", "victim": 0 });
    let hostile: Vec<_> = (0..2)
        .map(|_| {
            let spec = spec(&spin, Limits::default(), Duration::from_secs(4));
            tokio::spawn(async move { burst_host::run_flare(runtime(), fixtures(), &spec).await.expect("valid") })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let beside = barriers(fixtures(), ROUNDS).await;
    for flare in hostile {
        let result = flare.await.expect("joined");
        assert_eq!(result.failure.expect("spins to the deadline").kind, FailureKind::Deadline);
    }
    // Every barrier wakes each worker once; a woken worker waits at most for
    // the spinning guests on the two threads to reach their next epoch yield.
    let stall_per_round = beside.saturating_sub(alone) / ROUNDS;
    assert!(stall_per_round <= tick * 2, "alone {alone:?}, beside hostile flares {beside:?}, tick {tick:?}");
    outputs(&crate::support::run(hello(), 4, 2, &Value::Null).await);
}

#[tokio::test]
async fn a_worker_over_the_instance_limit_does_not_start_and_nothing_runs() {
    let limits = Limits { instances: 1, ..Limits::default() };
    let result = provoke(Packs::InProcess, json!({ "scenario": "print_lines" }), limits, Duration::from_secs(30)).await;
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Instantiate, "{failure}");
    assert!(failure.message.contains("instance"), "{failure}");
    assert!(result.workers.iter().all(|w| w.stdout.is_empty()), "no worker may enter work");
    still_healthy().await;
}
