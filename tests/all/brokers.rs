//! Packs talking through real brokers — Redis on 127.0.0.1:6379 and
//! RabbitMQ on 127.0.0.1:5672, started by `.ci/run` — in one process and in
//! one OS process per pack: outputs, byte counts against the model, failures,
//! garbage in a pack's inbox, and no key or queue left behind.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use burst_host::comm::frame::encode_message;
use burst_host::comm::rabbitmq::queue_name;
use burst_host::comm::redis::{inbox_key, registry_key};
use burst_host::comm::{self, Backend, BackendError, BrokerKind, BrokerOptions, Envelope, Kind, plan};
use burst_host::{FailureKind, FlareResult, FlareSpec, Limits, PackLayout, Program};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::{fixtures, guest_path, hello, microbench, outputs, run, runtime};

pub const BROKERS: [BrokerKind; 2] = [BrokerKind::Redis, BrokerKind::RabbitMq];

pub fn unique_flare_id(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("test-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn options(kind: BrokerKind, url: &str, chunk_bytes: usize, deadline: Duration) -> BrokerOptions {
    BrokerOptions { kind, url: url.to_owned(), chunk_bytes, deadline, message_bytes: Limits::default().message_bytes }
}

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(BrokerKind::Redis.default_url()).expect("valid URL");
    client.get_multiplexed_async_connection().await.expect("redis answers on 127.0.0.1:6379")
}

async fn rabbit() -> lapin::Channel {
    let connection = lapin::Connection::connect(BrokerKind::RabbitMq.default_url(), Default::default())
        .await
        .expect("rabbitmq answers on 127.0.0.1:5672");
    connection.create_channel().await.expect("a channel")
}

/// Keys or queues of `flare_id` still in the broker.
pub async fn leftovers(kind: BrokerKind, flare_id: &str, pack_count: u32) -> Vec<String> {
    match kind {
        BrokerKind::Redis => {
            let pattern = format!("burst:{flare_id}:*");
            redis::cmd("KEYS").arg(pattern).query_async(&mut redis().await).await.expect("KEYS")
        }
        BrokerKind::RabbitMq => {
            let mut left = Vec::new();
            for pack in 0..pack_count {
                let queue = queue_name(flare_id, pack);
                let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
                // A passive declare fails (and closes its channel) when the
                // queue does not exist.
                if rabbit().await.queue_declare(queue.as_str().into(), passive, Default::default()).await.is_ok() {
                    left.push(queue);
                }
            }
            left
        }
    }
}

/// How many packs of a flare have joined it in the broker: Redis counts
/// them in the flare's registry, RabbitMQ by their queues.
pub async fn joined(kind: BrokerKind, flare_id: &str, pack_count: u32) -> usize {
    match kind {
        BrokerKind::Redis => {
            redis::cmd("HLEN").arg(registry_key(flare_id)).query_async(&mut redis().await).await.expect("HLEN")
        }
        BrokerKind::RabbitMq => leftovers(kind, flare_id, pack_count).await.len(),
    }
}

/// Pushes raw bytes into the inbox of `pack_id`, as a broker would deliver them.
pub async fn inject(kind: BrokerKind, flare_id: &str, pack_id: u32, raw: &[u8]) {
    match kind {
        BrokerKind::Redis => redis::cmd("RPUSH")
            .arg(inbox_key(flare_id, pack_id))
            .arg(raw)
            .query_async::<()>(&mut redis().await)
            .await
            .expect("RPUSH"),
        BrokerKind::RabbitMq => {
            let queue = queue_name(flare_id, pack_id);
            let channel = rabbit().await;
            let confirm = channel
                .basic_publish("".into(), queue.as_str().into(), Default::default(), raw, Default::default())
                .await
                .expect("publish");
            confirm.await.expect("published");
        }
    }
}

/// Connects every pack of a flare of `n` workers in packs of `g`.
pub async fn connect_all(options: &BrokerOptions, n: u32, g: u32) -> (FlareSpec, Vec<Arc<dyn Backend>>) {
    let flare_id = unique_flare_id("flare");
    let layout = Arc::new(PackLayout::homogeneous(n, g).expect("valid"));
    let mut backends = Vec::new();
    for pack in 0..layout.pack_count() {
        backends.push(comm::connect(options, &flare_id, pack, layout.pack_count()).await.expect("connects"));
    }
    (FlareSpec::new(flare_id, layout, Vec::new(), options.deadline), backends)
}

/// Runs a flare with every pack in this process, through `kind`, and checks
/// that it left nothing in the broker.
async fn run_through(kind: BrokerKind, program: &Program, n: u32, g: u32, input: &Value, chunk: usize) -> FlareResult {
    let options = options(kind, kind.default_url(), chunk, Duration::from_secs(60));
    let (mut spec, backends) = connect_all(&options, n, g).await;
    spec.inputs = vec![Bytes::from(serde_json::to_vec(input).expect("JSON")); n as usize];
    let result = burst_host::run_flare_over(runtime(), program, &spec, backends).await.expect("valid spec");
    let left = leftovers(kind, &spec.flare_id, spec.layout.pack_count()).await;
    assert_eq!(left, Vec::<String>::new(), "{kind:?}: the flare left state behind");
    result
}

#[tokio::test]
async fn hello_through_a_broker_gives_the_same_outputs_and_bytes_as_in_memory() {
    let in_memory = run(hello(), 8, 3, &Value::Null).await;
    for kind in BROKERS {
        let through = run_through(kind, hello(), 8, 3, &Value::Null, 1 << 20).await;
        assert_eq!(outputs(&through), outputs(&in_memory), "{kind:?}");
        assert_eq!(through.bytes.remote, in_memory.bytes.remote, "{kind:?}");
    }
}

#[tokio::test]
async fn every_collective_through_a_broker_matches_the_model_with_many_chunks() {
    let size = 10_000;
    let layout = PackLayout::homogeneous(7, 3).expect("valid");
    for kind in BROKERS {
        for (primitive, collective) in [
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
            let result = run_through(kind, microbench(), 7, 3, &input, 4096).await;
            for (me, output) in (0..).zip(outputs(&result)) {
                assert_eq!(output["worker_id"], me, "{kind:?} {primitive}");
            }
            let expected = plan::remote_bytes(collective, &layout, 5, size);
            assert_eq!(result.bytes.remote, expected, "{kind:?} {primitive}");
        }
    }
}

#[tokio::test]
async fn a_message_from_another_pack_is_received_a_frame_at_a_time() {
    // The receivers read with the raw -first calls and recv-more: from
    // another pack, a piece per 4 KiB frame as it arrives (the two workers
    // of pack 1 share the pieces of the broadcast and of the all-gather
    // part); within a pack (or through the in-process broker), the message
    // whole in one piece.
    let input = json!({ "scenario": "comm_pieces", "bytes": 10_000 });
    let seen = |pieces: &str| {
        json!([
            format!("a2a={pieces}"),
            "total=10000",
            format!("pieces={pieces}"),
            "exact",
            "after=invalid-argument",
            format!("broadcast={pieces}"),
            format!("all-gather={pieces}")
        ])
    };
    for kind in BROKERS {
        let result = run_through(kind, fixtures(), 4, 2, &input, 4096).await;
        assert_eq!(outputs(&result)[3], seen("4096,4096,1808"), "{kind:?}");
    }
    assert_eq!(outputs(&run(fixtures(), 2, 2, &input).await)[1], seen("10000"));
    assert_eq!(outputs(&run(fixtures(), 2, 1, &input).await)[1], seen("10000"));
}

#[tokio::test]
async fn a_flare_spread_over_four_processes_is_byte_exact() {
    for (kind, name) in [(BrokerKind::Redis, "redis"), (BrokerKind::RabbitMq, "rabbitmq")] {
        let flare_id = unique_flare_id("procs");
        let input = r#"{"primitive": "all-to-all", "size": 300001, "root": 0}"#;
        let processes: Vec<_> = (0..4)
            .map(|pack| {
                Command::new(env!("CARGO_BIN_EXE_burst"))
                    .args(["run", "-n", "8", "-g", "2", "--json", "--backend", name, "--chunk-bytes", "65536"])
                    .args(["--flare-id", &flare_id, "--pack", &pack.to_string(), "--input", input])
                    .arg(guest_path("microbench"))
                    .env(
                        "BURST_CACHE_DIR",
                        std::env::temp_dir().join(format!("burst-procs-cache-{}", std::process::id())),
                    )
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map(|child| (pack, child))
            })
            .collect::<Result<_, _>>()
            .expect("the processes start");
        for (pack, child) in processes {
            let out = child.wait_with_output().expect("the process ends");
            assert!(out.status.success(), "{name} pack {pack}: {}", String::from_utf8_lossy(&out.stderr));
            let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            let outputs = doc["outputs"].as_array().expect("outputs");
            assert_eq!(outputs.len(), 2);
            for (i, output) in (0..).zip(outputs) {
                assert_eq!(output["worker_id"], pack * 2 + i, "{name}");
                assert_eq!(output["checked_bytes"], 8 * 300_001, "{name}");
            }
            // Each pack reads the parts its 2 workers get from the 6 outside,
            // each part as 5 frames of at most 64 KiB; plus the barrier: pack 0
            // reads one empty partial from each other pack, the others read
            // pack 0's empty result; and each pack reads the other three's
            // "done" frames (a header each).
            assert_eq!(doc["bytes"]["remote"], 2 * 6 * 300_001, "{name}");
            let frames = 2 * 6 * 5 + if pack == 0 { 3 } else { 1 } + 3;
            let header = 40 + flare_id.len() as u64;
            assert_eq!(doc["bytes"]["framing"], frames * header, "{name} pack {pack}");
        }
        assert_eq!(leftovers(kind, &flare_id, 4).await, Vec::<String>::new(), "{name}");
    }
}

#[tokio::test]
async fn a_failure_in_one_pack_releases_every_pack() {
    let input = json!({ "scenario": "fail_panic_in_collective", "victim": 4 });
    for kind in BROKERS {
        let result = run_through(kind, fixtures(), 6, 2, &input, 1 << 20).await;
        let failure = result.failure.as_ref().expect("the flare failed");
        assert_eq!((failure.worker_id, failure.kind), (Some(4), FailureKind::Trap), "{kind:?}: {failure}");
        for w in &result.workers {
            assert!(w.outcome.is_err(), "{kind:?} worker {}", w.worker_id);
            assert!(w.end_us <= failure.at_us + 1_000_000, "{kind:?}: worker {} ended late", w.worker_id);
        }
    }
}

#[tokio::test]
async fn receivers_blocked_on_the_broker_never_starve_a_send() {
    // Packs of 3, 3 and 1: two whole packs wait in `recv` on the broker
    // while the last worker, alone in its pack, still has to send.
    let input = json!({ "scenario": "comm_all_wait_one_sends" });
    for kind in BROKERS {
        let result = run_through(kind, fixtures(), 7, 3, &input, 1 << 20).await;
        let outputs = outputs(&result);
        for (w, output) in (0..6u64).zip(&outputs) {
            assert_eq!(output, &json!([w * 3]), "{kind:?}");
        }
        assert_eq!(outputs[6], json!([]));
    }
}

#[tokio::test]
async fn garbage_or_truncated_frames_fail_the_flare_with_a_protocol_error() {
    for kind in BROKERS {
        for truncate in [false, true] {
            let options = options(kind, kind.default_url(), 1 << 20, Duration::from_secs(30));
            let (mut spec, backends) = connect_all(&options, 4, 2).await;
            let raw = if truncate {
                // A valid frame of this flare (a message from worker 2 to 1)
                // cut in the middle of its header.
                let frame =
                    encode_message(&spec.flare_id, &Envelope::direct(0, 0, 2, 1), &Bytes::from_static(b"pay"), 1024);
                frame[0][..frame[0].len() - 12].to_vec()
            } else {
                b"\xb5\x01garbage".to_vec()
            };
            spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 4];
            let flare_id = spec.flare_id.clone();
            let writer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                inject(kind, &flare_id, 0, &raw).await;
            });
            let result = burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await.expect("valid spec");
            writer.await.expect("writer");
            let failure = result.failure.as_ref().expect("the flare failed");
            assert_eq!(failure.kind, FailureKind::Protocol, "{kind:?}: {failure}");
            let waited = result.workers.iter().map(|w| w.end_us - w.start_us).max().unwrap_or(0);
            assert!(waited < 10_000_000, "{kind:?}: failed at once, not at the deadline ({waited} µs)");
            assert_eq!(leftovers(kind, &spec.flare_id, 2).await, Vec::<String>::new(), "{kind:?}");
        }
    }
}

#[tokio::test]
async fn duplicated_and_reordered_frames_written_into_the_broker_reassemble() {
    // Worker 1 waits for a u64 from worker 2 (another pack) that nobody
    // sends; we write it ourselves: u64::MAX in postcard is 10 bytes, cut
    // into 4 frames of 3 bytes, written last-first and each twice.
    let message = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    for kind in BROKERS {
        let options = options(kind, kind.default_url(), 1 << 20, Duration::from_secs(3));
        let (mut spec, backends) = connect_all(&options, 4, 2).await;
        spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 4];
        let mut frames = encode_message(&spec.flare_id, &Envelope::direct(0, 0, 2, 1), &message, 3);
        assert_eq!(frames.len(), 4);
        frames.reverse();
        for frame in frames.iter().chain(&frames) {
            inject(kind, &spec.flare_id, 0, frame).await;
        }
        let result = burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await.expect("valid spec");
        let delivered = result.workers[1].outcome.as_ref().expect("worker 1 got its message");
        assert_eq!(&delivered[..], format!("[{}]", u64::MAX).as_bytes(), "{kind:?}");
        assert_eq!(
            result.failure.as_ref().map(|f| f.kind),
            Some(FailureKind::Deadline),
            "{kind:?}: the others still wait"
        );
        assert_eq!(leftovers(kind, &spec.flare_id, 2).await, Vec::<String>::new(), "{kind:?}");
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_naming_its_url() {
    for (kind, url) in [(BrokerKind::Redis, "redis://127.0.0.1:1"), (BrokerKind::RabbitMq, "amqp://127.0.0.1:1/%2f")] {
        let error = comm::connect(&options(kind, url, 1024, Duration::from_secs(5)), "unreachable", 0, 2)
            .await
            .err()
            .expect("nothing listens on port 1");
        assert!(matches!(&error, BackendError::Io(m) if m.contains(url)), "{error}");
        let bad_id = comm::connect(&options(kind, kind.default_url(), 1024, Duration::from_secs(5)), "a:b", 0, 2).await;
        assert!(matches!(bad_id.err(), Some(BackendError::Protocol(_))), "{kind:?}");
    }
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

/// A private redis-server on a free loopback port, so that a test can kill
/// it without disturbing the tests that share the main one.
pub struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    pub fn start(port: u16) -> Self {
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

    pub fn options(&self) -> BrokerOptions {
        options(BrokerKind::Redis, &format!("redis://127.0.0.1:{}", self.port), 1 << 20, Duration::from_secs(30))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_broker_that_dies_mid_flare_fails_the_flare_and_a_restarted_one_serves_the_next() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let server = PrivateRedis::start(port);
    let program = fixtures();
    let (mut spec, backends) = connect_all(&server.options(), 4, 2).await;
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
    let (mut spec, backends) = connect_all(&server.options(), 4, 2).await;
    spec.inputs = vec![Bytes::from_static(b"null"); 4];
    let result = burst_host::run_flare_over(runtime(), hello(), &spec, backends).await.expect("valid spec");
    assert_eq!(outputs(&result)[3]["sum_of_ids"], 6);
}

#[tokio::test]
async fn packs_that_broadcast_from_different_roots_fail_through_every_broker() {
    let bench = |root: u32| Bytes::from(json!({"primitive": "broadcast", "size": 5000, "root": root}).to_string());
    for kind in BROKERS {
        let options = options(kind, kind.default_url(), 1024, Duration::from_secs(30));
        let (mut spec, backends) = connect_all(&options, 4, 2).await;
        spec.inputs = vec![bench(0), bench(0), bench(3), bench(3)];
        let result = burst_host::run_flare_over(runtime(), microbench(), &spec, backends).await.expect("valid spec");
        let failure = result.failure.as_ref().expect("the packs disagree");
        assert_eq!(failure.kind, FailureKind::Protocol, "{kind:?}: {failure}");
        assert!(matches!(failure.worker_id, Some(0 | 3)), "{kind:?}: {failure}");
        assert_eq!(leftovers(kind, &spec.flare_id, 2).await, Vec::<String>::new(), "{kind:?}");
    }
}

#[tokio::test]
async fn the_processes_of_one_flare_may_have_different_deadlines() {
    // A queue's arguments once depended on the declaring process's
    // --timeout, and a second declaration with another was refused.
    for (kind, name) in [(BrokerKind::Redis, "redis"), (BrokerKind::RabbitMq, "rabbitmq")] {
        let flare_id = unique_flare_id("timeouts");
        let processes: Vec<_> = [30, 90]
            .iter()
            .enumerate()
            .map(|(pack, timeout)| {
                Command::new(env!("CARGO_BIN_EXE_burst"))
                    .args(["run", "-n", "4", "-g", "2", "--json", "--backend", name, "--timeout", &timeout.to_string()])
                    .args(["--flare-id", &flare_id, "--pack", &pack.to_string()])
                    .arg(guest_path("hello"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("burst starts")
            })
            .collect();
        for child in processes {
            let out = child.wait_with_output().expect("the process ends");
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
            let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(doc["outputs"][1]["sum_of_ids"], 6, "{name}: {doc}");
        }
        assert_eq!(leftovers(kind, &flare_id, 2).await, Vec::<String>::new(), "{name}");
    }
}
