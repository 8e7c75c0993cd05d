//! Brokers that misbehave: a TCP proxy on loopback between the packs and
//! a real broker freezes connections (bytes stop moving both ways, sockets
//! stay open) or cuts them. Whatever it does, a flare ends within its
//! deadline plus the cleanup budget, and what could not be deleted is left
//! only with its expiry.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burst_host::comm::{BrokerKind, CLEANUP_TIMEOUT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::brokers::{leftovers, unique_flare_id};
use crate::support::guest_path;

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
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let (mode, _) = watch::channel(Mode::Flowing);
        let modes = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, modes.subscribe()));
                tokio::spawn(forward(server_read, client_write, modes.subscribe()));
            }
        });
        Self { port, mode, accept }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
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
        tokio::time::sleep(Duration::from_secs(1)).await;
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
