//! Packs talking through a real Redis server (127.0.0.1:6379, started by
//! `.ci/run`): in one process and in one OS process per pack; byte counts,
//! failures, garbage in an inbox, and no key left behind.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use burst_host::comm::redis::inbox_key;
use burst_host::comm::{Backend, BackendError, Kind, RedisBackend, RedisOptions, plan};
use burst_host::{FailureKind, FlareResult, FlareSpec, PackLayout, Program};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::{fixtures, guest_path, hello, microbench, outputs, run, runtime};

const REDIS: &str = "redis://127.0.0.1:6379";

fn unique_flare_id(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("test-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn options(chunk_bytes: usize, deadline: Duration) -> RedisOptions {
    RedisOptions { url: REDIS.into(), chunk_bytes, deadline }
}

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).expect("valid URL");
    client.get_multiplexed_async_connection().await.expect("redis answers on 127.0.0.1:6379")
}

/// Keys of `flare_id` still in Redis.
async fn flare_keys(flare_id: &str) -> Vec<String> {
    redis::cmd("KEYS").arg(format!("burst:{flare_id}:*")).query_async(&mut redis().await).await.expect("KEYS")
}

async fn run_over_redis(
    program: &Program,
    n: u32,
    g: u32,
    input: &Value,
    chunk: usize,
    deadline: Duration,
) -> FlareResult {
    let (mut spec, backends) = connect_all(REDIS, n, g, chunk, deadline).await;
    spec.inputs = vec![Bytes::from(serde_json::to_vec(input).expect("JSON")); n as usize];
    let result = burst_host::run_flare_over(runtime(), program, &spec, backends).await.expect("valid spec");
    assert_eq!(flare_keys(&spec.flare_id).await, Vec::<String>::new(), "the flare left keys behind");
    result
}

#[tokio::test]
async fn hello_through_redis_gives_the_same_outputs_and_bytes_as_in_memory() {
    let over_redis = run_over_redis(hello(), 8, 3, &Value::Null, 1 << 20, Duration::from_secs(60)).await;
    let in_memory = run(hello(), 8, 3, &Value::Null).await;
    assert_eq!(outputs(&over_redis), outputs(&in_memory));
    assert_eq!(over_redis.bytes.remote, in_memory.bytes.remote);
}

#[tokio::test]
async fn every_collective_through_redis_matches_the_model_with_many_chunks() {
    let size = 10_000;
    let layout = PackLayout::homogeneous(7, 3).expect("valid");
    for (primitive, kind) in [
        ("broadcast", Kind::Broadcast),
        ("scatter", Kind::Scatter),
        ("gather", Kind::Gather),
        ("all-gather", Kind::AllGather),
        ("all-to-all", Kind::AllToAll),
        ("reduce", Kind::Reduce),
        ("all-reduce", Kind::AllReduce),
    ] {
        let input = json!({ "primitive": primitive, "size": size, "root": 5 });
        // 4 KiB chunks: every 10,000-byte message crosses as 3 frames.
        let run = run_over_redis(microbench(), 7, 3, &input, 4096, Duration::from_secs(60)).await;
        for (me, output) in (0..).zip(outputs(&run)) {
            assert_eq!(output["worker_id"], me, "{primitive}");
        }
        assert_eq!(run.bytes.remote, plan::remote_bytes(kind, &layout, 5, size), "{primitive}");
    }
}

#[tokio::test]
async fn a_flare_spread_over_four_processes_is_byte_exact() {
    let flare_id = unique_flare_id("procs");
    let input = r#"{"primitive": "all-to-all", "size": 300001, "root": 0}"#;
    let processes: Vec<_> = (0..4)
        .map(|pack| {
            Command::new(env!("CARGO_BIN_EXE_burst"))
                .args(["run", "-n", "8", "-g", "2", "--json", "--backend", "redis", "--broker-url", REDIS])
                .args([
                    "--chunk-bytes",
                    "65536",
                    "--flare-id",
                    &flare_id,
                    "--pack",
                    &pack.to_string(),
                    "--input",
                    input,
                ])
                .arg(guest_path("microbench"))
                .env("BURST_CACHE_DIR", std::env::temp_dir().join(format!("burst-procs-cache-{}", std::process::id())))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map(|child| (pack, child))
        })
        .collect::<Result<_, _>>()
        .expect("the processes start");
    for (pack, child) in processes {
        let out = child.wait_with_output().expect("the process ends");
        assert!(out.status.success(), "pack {pack}: {}", String::from_utf8_lossy(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let outputs = doc["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), 2);
        for (i, output) in (0..).zip(outputs) {
            assert_eq!(output["worker_id"], pack * 2 + i);
            assert_eq!(output["checked_bytes"], 8 * 300_001);
        }
        // Each pack reads the parts its 2 workers get from the 6 outside.
        assert_eq!(doc["bytes"]["remote"], 2 * 6 * 300_001);
    }
    assert_eq!(flare_keys(&flare_id).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_failure_in_one_pack_releases_every_pack_through_redis() {
    let input = json!({ "scenario": "fail_panic_in_collective", "victim": 4 });
    let run = run_over_redis(fixtures(), 6, 2, &input, 1 << 20, Duration::from_secs(60)).await;
    let failure = run.failure.as_ref().expect("the flare failed");
    assert_eq!((failure.worker_id, failure.kind), (Some(4), FailureKind::Trap), "{failure}");
    for w in &run.workers {
        assert!(w.outcome.is_err(), "worker {}", w.worker_id);
        assert!(w.end_us <= failure.at_us + 1_000_000, "worker {} ended late", w.worker_id);
    }
}

#[tokio::test]
async fn garbage_in_an_inbox_fails_the_flare_with_a_protocol_error() {
    let (mut spec, backends) = connect_all(REDIS, 4, 2, 1 << 20, Duration::from_secs(30)).await;
    spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 4];
    let flare_id = spec.flare_id.clone();
    let key = inbox_key(&flare_id, 1);
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis::cmd("RPUSH").arg(&key).arg(b"\xb5\x01garbage".as_slice()).query_async::<()>(&mut redis().await).await
    });
    let result = burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await.expect("valid spec");
    writer.await.expect("writer").expect("pushed");
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Protocol, "{failure}");
    let waited = result.workers.iter().map(|w| w.end_us - w.start_us).max().unwrap_or(0);
    assert!(waited < 10_000_000, "the flare failed at once, not at its deadline ({waited} µs)");
    assert_eq!(flare_keys(&flare_id).await, Vec::<String>::new());
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_naming_its_url() {
    let unreachable =
        RedisOptions { url: "redis://127.0.0.1:1".into(), chunk_bytes: 1024, deadline: Duration::from_secs(5) };
    let error = RedisBackend::connect("unreachable", 0, 2, unreachable).await.err().expect("nothing listens on port 1");
    assert!(matches!(&error, BackendError::Io(m) if m.contains("redis at redis://127.0.0.1:1")), "{error}");
    let bad_id =
        RedisBackend::connect("a:b", 0, 2, options(1024, Duration::from_secs(5))).await.err().expect("refused");
    assert!(matches!(bad_id, BackendError::Protocol(_)));
}

#[test]
fn the_cli_names_an_unreachable_broker() {
    let out = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(["run", "-n", "2", "-g", "1", "--backend", "redis", "--broker-url", "redis://127.0.0.1:1"])
        .arg(guest_path("hello"))
        .output()
        .expect("burst runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis at redis://127.0.0.1:1"));
}

#[tokio::test]
async fn receivers_blocked_on_the_broker_never_starve_a_send() {
    // Packs of 3, 3 and 1: two whole packs wait in `recv` on Redis while the
    // last worker, alone in its pack, still has to send.
    let input = json!({ "scenario": "comm_all_wait_one_sends" });
    let result = run_over_redis(fixtures(), 7, 3, &input, 1 << 20, Duration::from_secs(60)).await;
    let outputs = outputs(&result);
    for (w, output) in (0..6u64).zip(&outputs) {
        assert_eq!(output, &json!([w * 3]));
    }
    assert_eq!(outputs[6], json!([]));
}

/// A private redis-server on a free loopback port, so that a test can kill
/// it without disturbing the tests that share the main one.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the private redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects every pack of a flare of `n` workers in packs of `g` to `url`.
async fn connect_all(
    url: &str,
    n: u32,
    g: u32,
    chunk: usize,
    deadline: Duration,
) -> (FlareSpec, Vec<Arc<dyn Backend>>) {
    let flare_id = unique_flare_id("private");
    let layout = Arc::new(PackLayout::homogeneous(n, g).expect("valid"));
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    for pack in 0..layout.pack_count() {
        let options = RedisOptions { url: url.to_owned(), chunk_bytes: chunk, deadline };
        let backend = RedisBackend::connect(&flare_id, pack, layout.pack_count(), options).await;
        backends.push(Arc::new(backend.expect("connects")));
    }
    (FlareSpec { flare_id, layout, inputs: Vec::new(), deadline }, backends)
}

#[tokio::test]
async fn a_broker_that_dies_mid_flare_fails_the_flare_and_a_restarted_one_serves_the_next() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let server = PrivateRedis::start(port);
    let deadline = Duration::from_secs(30);
    let program = fixtures();
    let (mut spec, backends) = connect_all(&server.url(), 4, 2, 1 << 20, deadline).await;
    spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 4];
    let killer = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(400));
        drop(server);
    });
    let result = burst_host::run_flare_over(runtime(), program, &spec, backends).await.expect("valid spec");
    killer.await.expect("killer");
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Backend, "{failure}");
    for w in &result.workers {
        assert!(w.outcome.is_err());
        assert!(w.end_us <= failure.at_us + 1_000_000, "worker {} ended late", w.worker_id);
    }
    let server = PrivateRedis::start(port);
    let (mut spec, backends) = connect_all(&server.url(), 4, 2, 1 << 20, deadline).await;
    spec.inputs = vec![Bytes::from_static(b"null"); 4];
    let result = burst_host::run_flare_over(runtime(), hello(), &spec, backends).await.expect("valid spec");
    assert_eq!(outputs(&result)[3]["sum_of_ids"], 6);
    drop(server);
}
