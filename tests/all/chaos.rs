//! Brokers that misbehave: a TCP proxy on loopback between the packs and
//! a real broker freezes connections (bytes stop moving both ways, sockets
//! stay open) or cuts them, and a private RabbitMQ node is killed mid-flare.
//! Whatever happens, a flare ends within its deadline plus the cleanup
//! budget (at once when the broker is gone), and what could not be deleted
//! is left only with its expiry.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst_host::FailureKind;
use burst_host::comm::{BrokerKind, CLEANUP_TIMEOUT};
use burst_host::result::now_us;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::brokers::{connect_all, joined, leftovers, options, unique_flare_id};
use crate::support::{fixtures, guest_path, hello, microbench, outputs, runtime};

/// What the proxy does with the bytes of every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards them.
    Flowing,
    /// Holds them; connections stay open.
    Frozen,
    /// Closes every connection, and every new one at once.
    Cut,
}

/// A TCP proxy on a free loopback port in front of `upstream`.
pub struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
    /// Every connection's copying tasks, aborted (both ways at once) by a cut.
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let (mode, _) = watch::channel(Mode::Flowing);
        let modes = mode.clone();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tasks = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *modes.borrow() == Mode::Cut {
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = tokio::spawn(forward(client_read, server_write, modes.subscribe()));
                let down = tokio::spawn(forward(server_read, client_write, modes.subscribe()));
                tasks.lock().expect("not poisoned").extend([up.abort_handle(), down.abort_handle()]);
            }
        });
        Self { port, mode, accept, connections }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Cut {
            for connection in self.connections.lock().expect("not poisoned").drain(..) {
                connection.abort();
            }
        }
    }

    /// The URL of `kind`'s default broker, through this proxy.
    pub fn url(&self, kind: BrokerKind) -> String {
        match kind {
            BrokerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
            BrokerKind::RabbitMq => format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Cut);
        self.accept.abort();
    }
}

/// Copies one direction of a connection, obeying the proxy's mode.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = mode.wait_for(|m| *m == Mode::Cut) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match mode.wait_for(|m| *m != Mode::Frozen).await.map(|m| *m) {
            Ok(Mode::Flowing) => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

pub fn upstream(kind: BrokerKind) -> SocketAddr {
    let port = if kind == BrokerKind::Redis { 6379 } else { 5672 };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One `burst run --pack` process per pack of a 2-pack flare whose workers
/// wait for a message nobody sends, through `url`, with `timeout` seconds.
fn start_packs(kind: BrokerKind, url: &str, flare_id: &str, timeout: u64) -> Vec<std::process::Child> {
    let backend = if kind == BrokerKind::Redis { "redis" } else { "rabbitmq" };
    (0..2)
        .map(|pack| {
            Command::new(env!("CARGO_BIN_EXE_burst"))
                .args(["run", "-n", "4", "-g", "2", "--json", "--backend", backend, "--broker-url", url])
                .args(["--flare-id", flare_id, "--pack", &pack.to_string(), "--timeout", &timeout.to_string()])
                .args(["--input", r#"{"scenario": "fail_wait_forever"}"#])
                .arg(guest_path("burst_fixtures"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("burst starts")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_freezes_mid_flare_cannot_keep_a_pack_process_alive() {
    for kind in [BrokerKind::Redis, BrokerKind::RabbitMq] {
        let proxy = Proxy::start(upstream(kind)).await;
        let flare_id = unique_flare_id("frozen");
        let deadline = 3;
        let started = Instant::now();
        let packs = start_packs(kind, &proxy.url(kind), &flare_id, deadline);
        // Frozen once both packs have joined (on a loaded machine the
        // processes may take more than a second to start and connect).
        let joined = async {
            while joined(kind, &flare_id, 2).await < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), joined).await.expect("both packs join the flare");
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set(Mode::Frozen);
        let finished = tokio::task::spawn_blocking(move || {
            packs.into_iter().map(|p| p.wait_with_output().expect("burst ends")).collect::<Vec<_>>()
        })
        .await
        .expect("waiter");
        let took = started.elapsed();
        // Deadline, the grace a stopped worker gets, then at most the
        // cleanup budget twice (telling the other pack, deleting), plus
        // process start and exit.
        let bound = Duration::from_secs(deadline) + 2 * CLEANUP_TIMEOUT + Duration::from_secs(3);
        assert!(took < bound, "{kind:?}: the packs took {took:?} with a frozen broker (bound {bound:?})");
        for out in &finished {
            assert_eq!(out.status.code(), Some(1), "{kind:?}: {}", String::from_utf8_lossy(&out.stderr));
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
            assert_eq!(doc["failure"]["kind"], "deadline", "{kind:?}: {doc}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("could not clean up the broker; left there"), "{kind:?}: {stderr}");
        }
        drop(proxy);
        // Whatever was left behind has an expiry; the test removes it.
        remove_with_expiry(kind, &leftovers(kind, &flare_id, 2).await).await;
    }
}

/// Deletes what a test left in the broker after checking that the broker
/// would have deleted it on its own.
async fn remove_with_expiry(kind: BrokerKind, left: &[String]) {
    match kind {
        BrokerKind::Redis => {
            let client = redis::Client::open(kind.default_url()).expect("URL");
            let mut redis = client.get_multiplexed_async_connection().await.expect("redis");
            for key in left {
                let ttl: i64 = redis::cmd("TTL").arg(key).query_async(&mut redis).await.expect("TTL");
                assert!(ttl > 0, "{key} has no expiry ({ttl})");
                let _: () = redis::cmd("DEL").arg(key).query_async(&mut redis).await.expect("DEL");
            }
        }
        BrokerKind::RabbitMq => {
            let connection =
                lapin::Connection::connect(kind.default_url(), Default::default()).await.expect("rabbitmq");
            let channel = connection.create_channel().await.expect("channel");
            for queue in left {
                // Every queue of a flare is declared with x-expires; a
                // declaration with other arguments would be refused.
                let mut arguments = lapin::types::FieldTable::default();
                let expiry = burst_host::comm::rabbitmq::QUEUE_EXPIRY.as_millis() as i32;
                arguments.insert("x-expires".into(), lapin::types::AMQPValue::LongInt(expiry));
                channel
                    .queue_declare(queue.as_str().into(), Default::default(), arguments)
                    .await
                    .expect("same arguments");
                channel.queue_delete(queue.as_str().into(), Default::default()).await.expect("deleted");
            }
        }
    }
}

/// A private RabbitMQ node of this test process (its own node name, ports
/// and data directory), so that a test can kill it without disturbing the
/// shared broker. Started again with the same name, it finds its data.
pub struct PrivateRabbit {
    port: u16,
    dir: std::path::PathBuf,
    node: Option<std::process::Child>,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("burst-rabbit-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a data directory");
        // The server drops to the `rabbitmq` user, which must be able to write there.
        Command::new("chmod").arg("777").arg(&dir).status().expect("chmod");
        let mut rabbit = Self { port, dir, node: None };
        rabbit.boot();
        rabbit
    }

    fn boot(&mut self) {
        use std::os::unix::process::CommandExt as _;
        let dir = |name: &str| self.dir.join(name);
        let node = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", format!("burst-test-{}@localhost", self.port))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", dir("feature_flags"))
            .env("RABBITMQ_PID_FILE", dir("pid"))
            .env("RABBITMQ_CONFIG_FILE", dir("none"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server is installed (.ci/run installs it)");
        self.node = Some(node);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(90), "the private rabbitmq-server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the node at once: its Erlang VM (which runs in a session of
    /// its own, as the `rabbitmq` user) by the pid it wrote, then the
    /// wrapper scripts in front of it.
    pub fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").args(["-KILL", "--", pid.trim()]).status();
            let _ = std::fs::remove_file(self.dir.join("pid"));
        }
        if let Some(mut node) = self.node.take() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", node.id())]).status();
            let _ = node.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.boot();
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_node_killed_mid_flare_fails_the_flare_and_a_restarted_one_serves_the_next() {
    let mut rabbit = tokio::task::spawn_blocking(PrivateRabbit::start).await.expect("started");
    let private = options(BrokerKind::RabbitMq, &rabbit.url(), 1 << 20, Duration::from_secs(30));
    let (mut spec, backends) = connect_all(&private, 4, 2).await;
    spec.inputs = vec![Bytes::from_static(br#"{"scenario": "fail_wait_forever"}"#); 4];
    let run = tokio::spawn(async move { burst_host::run_flare_over(runtime(), fixtures(), &spec, backends).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = now_us();
    let mut rabbit = tokio::task::spawn_blocking(move || {
        rabbit.kill();
        rabbit
    })
    .await
    .expect("killed");
    let result = tokio::time::timeout(Duration::from_secs(20), run).await.expect("nothing hangs").expect("task");
    let result = result.expect("valid spec");
    let failure = result.failure.as_ref().expect("the flare failed");
    assert_eq!(failure.kind, FailureKind::Backend, "{failure}");
    assert!(failure.at_us < killed_at + 1_000_000, "failed {} µs after the kill", failure.at_us - killed_at);
    for w in &result.workers {
        assert!(w.end_us <= failure.at_us + 1_000_000, "worker {} ended late", w.worker_id);
    }
    // Kept until the end: dropping it stops the node.
    let _rabbit = tokio::task::spawn_blocking(move || {
        rabbit.restart();
        rabbit
    })
    .await
    .expect("restarted");
    let (mut spec, backends) = connect_all(&private, 4, 2).await;
    spec.inputs = vec![Bytes::from_static(b"null"); 4];
    let result = burst_host::run_flare_over(runtime(), hello(), &spec, backends).await.expect("valid spec");
    assert_eq!(outputs(&result)[3]["sum_of_ids"], 6);
}

/// A small deterministic generator: a failing round is replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// What the proxy does to a flare, and when.
#[derive(Debug)]
enum Trouble {
    /// Holds every byte for a while, then lets them through.
    Freeze(Duration),
    /// Closes every connection; new ones get through.
    Cut,
    /// Short stalls, again and again.
    Stutter(u32),
}

async fn make(proxy: &Proxy, trouble: &Trouble) {
    match *trouble {
        Trouble::Freeze(hold) => {
            proxy.set(Mode::Frozen);
            tokio::time::sleep(hold).await;
        }
        Trouble::Cut => {
            proxy.set(Mode::Cut);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Trouble::Stutter(times) => {
            for _ in 0..times {
                proxy.set(Mode::Frozen);
                tokio::time::sleep(Duration::from_millis(40)).await;
                proxy.set(Mode::Flowing);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    proxy.set(Mode::Flowing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flares_through_a_misbehaving_proxy_succeed_exactly_or_fail_as_backend_and_leave_nothing() {
    let (size, iterations) = (200_000u64, 10u64);
    let input =
        Bytes::from(serde_json::json!({"primitive": "all-to-all", "size": size, "iterations": iterations}).to_string());
    let deadline = Duration::from_secs(8);
    for kind in [BrokerKind::Redis, BrokerKind::RabbitMq] {
        for seed in 1..=4u64 {
            let mut random = Lcg(seed * 7919);
            let trouble = match random.below(3) {
                0 => Trouble::Freeze(Duration::from_millis(100 + random.below(1500))),
                1 => Trouble::Cut,
                _ => Trouble::Stutter(5 + random.below(20) as u32),
            };
            let after = Duration::from_millis(random.below(300));
            let proxy = Proxy::start(upstream(kind)).await;
            let (mut spec, backends) = connect_all(&options(kind, &proxy.url(kind), 64 << 10, deadline), 4, 2).await;
            spec.inputs = vec![input.clone(); 4];
            let started = Instant::now();
            let chaos = async {
                tokio::time::sleep(after).await;
                make(&proxy, &trouble).await;
            };
            let (result, ()) =
                tokio::join!(burst_host::run_flare_over(runtime(), microbench(), &spec, backends), chaos);
            let result = result.expect("valid spec");
            let took = started.elapsed();
            let case = format!("{kind:?}, seed {seed}: {trouble:?} after {after:?}");
            assert!(took < deadline + 2 * CLEANUP_TIMEOUT + Duration::from_secs(2), "{case}: took {took:?}");
            match &result.failure {
                None => {
                    for (worker, output) in (0..).zip(outputs(&result)) {
                        assert_eq!(output["worker_id"], worker, "{case}");
                        assert_eq!(output["checked_bytes"], 4 * size * iterations, "{case}");
                    }
                }
                Some(failure) => assert_eq!(failure.kind, FailureKind::Backend, "{case}: {failure}"),
            }
            drop(proxy);
            assert_eq!(leftovers(kind, &spec.flare_id, 2).await, Vec::<String>::new(), "{case}");
        }
    }
}
