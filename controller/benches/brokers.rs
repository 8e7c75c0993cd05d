//! Benchmarks of the paths between packs, through real Redis and RabbitMQ.
//!
//! - Pair: 256 MiB from a worker in one process to a worker in another,
//!   through each broker at several chunk sizes, next to the raw throughput
//!   of the same broker with the same chunk size measured in the same run
//!   (the redis crate doing SET/GET; a plain lapin publish/consume loop).
//! - Broadcast and all-to-all at N ∈ {8, 16, 32, 64} and every granularity
//!   dividing N, through Redis: latency (max end − min start) and remote
//!   bytes, with the reduction of remote traffic against granularity 1 and
//!   the model's figure beside it. Payloads are smaller than a cluster
//!   would use (8 MiB broadcast, 256 KiB per all-to-all pair) so that
//!   N² payloads fit this machine's memory.
//!
//! `cargo bench -p burst-controller --bench brokers` prints the tables and
//! writes `target/bench/brokers.json` (or `$BURST_BENCH_JSON`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use burst_host::comm::{self, BrokerKind, BrokerOptions, Kind, plan};
use burst_host::result::now_us;
use burst_host::{FlareSpec, PackLayout, Runtime, RuntimeConfig};
use bytes::Bytes;
use futures_lite::StreamExt as _;
use serde_json::{Value, json};

mod support;

use support::{guests, median, write_report};

const PAIR_BYTES: usize = 256 << 20;
const CHUNKS: [usize; 3] = [64 << 10, 1 << 20, 8 << 20];
const BROADCAST_BYTES: u64 = 8 << 20;
const ALL_TO_ALL_BYTES: u64 = 256 << 10;

fn mib_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / f64::from(1 << 20)
}

/// SET then GET of `PAIR_BYTES` in chunks through the redis crate.
async fn raw_redis(chunk: usize) -> anyhow::Result<f64> {
    let client = redis::Client::open(BrokerKind::Redis.default_url())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let payload: Vec<u8> = (0..chunk).map(|i| (i * 131 % 251) as u8).collect();
    let key = format!("burst-bench-raw-{}", std::process::id());
    let start = Instant::now();
    for _ in 0..PAIR_BYTES / chunk {
        redis::cmd("SET").arg(&key).arg(&payload).query_async::<()>(&mut connection).await?;
        let back: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut connection).await?;
        ensure!(back.len() == chunk, "GET returned {} bytes", back.len());
    }
    let rate = mib_per_s(PAIR_BYTES, start.elapsed().as_secs_f64());
    redis::cmd("DEL").arg(&key).query_async::<()>(&mut connection).await?;
    Ok(rate)
}

/// Publish with confirms and consume `PAIR_BYTES` in chunks through lapin.
async fn raw_rabbitmq(chunk: usize) -> anyhow::Result<f64> {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, ConfirmSelectOptions, QueueDeleteOptions};
    let connection = lapin::Connection::connect(BrokerKind::RabbitMq.default_url(), Default::default()).await?;
    let publisher = connection.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    let consumer_channel = connection.create_channel().await?;
    let queue = format!("burst-bench-raw-{}", std::process::id());
    publisher.queue_declare(queue.as_str().into(), Default::default(), Default::default()).await?;
    let mut consumer = consumer_channel
        .basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), Default::default())
        .await?;
    let payload: Vec<u8> = (0..chunk).map(|i| (i * 131 % 251) as u8).collect();
    let count = PAIR_BYTES / chunk;
    let start = Instant::now();
    let publishing = async {
        for _ in 0..count {
            publisher
                .basic_publish("".into(), queue.as_str().into(), Default::default(), &payload, Default::default())
                .await?
                .await?;
        }
        anyhow::Ok(())
    };
    let consuming = async {
        for _ in 0..count {
            let delivery = consumer.next().await.context("consumer ended")??;
            ensure!(delivery.data.len() == chunk, "short delivery");
            delivery.ack(BasicAckOptions::default()).await?;
        }
        anyhow::Ok(())
    };
    let (published, consumed) = tokio::join!(publishing, consuming);
    published?;
    consumed?;
    let rate = mib_per_s(PAIR_BYTES, start.elapsed().as_secs_f64());
    publisher.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    connection.close(200, "done".into()).await?;
    Ok(rate)
}

/// The pair through `backend` with `chunk`: two `burst run --pack` processes.
fn pair(backend: &str, chunk: usize) -> anyhow::Result<f64> {
    let flare_id = format!("bench-pair-{backend}-{chunk}-{}", std::process::id());
    let input = json!({ "primitive": "pair", "size": PAIR_BYTES, "iterations": 3 }).to_string();
    let children = (0..2)
        .map(|pack| {
            Command::new(env!("CARGO_BIN_EXE_burst"))
                .args(["run", "-n", "2", "-g", "1", "--json", "--backend", backend, "--flare-id", &flare_id])
                .args(["--pack", &pack.to_string(), "--chunk-bytes", &chunk.to_string(), "--input", &input])
                // A 256 MiB message held by the guest and lowered into it again.
                .args(["--memory-limit", &(1u64 << 30).to_string()])
                .arg(guests::guest_path("microbench"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut receiver = Value::Null;
    for (pack, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "{backend} pack {pack}: {}", String::from_utf8_lossy(&out.stderr));
        if pack == 1 {
            receiver = serde_json::from_slice::<Value>(&out.stdout)?["outputs"][0].clone();
        }
    }
    ensure!(receiver["checked_bytes"] == 3 * PAIR_BYTES as u64, "receiver: {receiver}");
    let times: Vec<f64> =
        receiver["elapsed_us"].as_array().context("timings")?.iter().filter_map(Value::as_f64).collect();
    Ok(mib_per_s(PAIR_BYTES, median(times) / 1e6))
}

/// One collective through Redis with every pack in this process.
async fn collective(
    runtime: &Arc<Runtime>,
    program: &burst_host::Program,
    primitive: &str,
    n: u32,
    g: u32,
    bytes: u64,
) -> anyhow::Result<(f64, u64)> {
    let flare_id = format!("bench-{primitive}-{n}-{g}-{}", std::process::id());
    let layout = Arc::new(PackLayout::homogeneous(n, g)?);
    let options = BrokerOptions {
        kind: BrokerKind::Redis,
        url: BrokerKind::Redis.default_url().into(),
        chunk_bytes: 1 << 20,
        deadline: Duration::from_secs(600),
        message_bytes: burst_host::Limits::default().message_bytes,
    };
    let mut backends = Vec::new();
    for pack in 0..layout.pack_count() {
        backends.push(comm::connect(&options, &flare_id, pack, layout.pack_count()).await?);
    }
    let input = Bytes::from(json!({ "primitive": primitive, "size": bytes, "root": 0 }).to_string());
    let spec = FlareSpec::new(flare_id, layout, vec![input; n as usize], options.deadline);
    let result = burst_host::run_flare_over(runtime, program, &spec, backends).await?;
    if let Some(failure) = &result.failure {
        anyhow::bail!("{primitive} N={n} G={g}: {failure}");
    }
    // Latency of the collective itself: every worker times it from a
    // common barrier; the slowest worker's time is the collective's.
    let mut slowest = 0.0f64;
    for w in &result.workers {
        let output: Value = serde_json::from_slice(w.outcome.as_ref().map_err(|f| anyhow::anyhow!("{f}"))?)?;
        slowest = slowest.max(output["elapsed_us"][0].as_f64().unwrap_or(0.0));
    }
    Ok((slowest / 1e3, result.bytes.remote))
}

fn main() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Runtime::new()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let microbench = runtime.load(&std::fs::read(guests::guest_path("microbench"))?, None)?;

    let mut pairs = Vec::new();
    println!("pair of 256 MiB between two processes (MiB/s)");
    println!(
        "{:>10} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
        "chunk", "redis", "raw redis", "share", "rabbitmq", "raw rabbit", "share"
    );
    for chunk in CHUNKS {
        let redis = pair("redis", chunk)?;
        let raw_redis = tokio.block_on(raw_redis(chunk))?;
        let rabbit = pair("rabbitmq", chunk)?;
        let raw_rabbit = tokio.block_on(raw_rabbitmq(chunk))?;
        println!(
            "{:>7} KiB {redis:>12.0} {raw_redis:>12.0} {:>6.0}% {rabbit:>12.0} {raw_rabbit:>12.0} {:>6.0}%",
            chunk >> 10,
            redis / raw_redis * 100.0,
            rabbit / raw_rabbit * 100.0
        );
        pairs.push(json!({ "chunk_bytes": chunk, "redis_mib_s": redis, "raw_redis_mib_s": raw_redis,
            "rabbitmq_mib_s": rabbit, "raw_rabbitmq_mib_s": raw_rabbit }));
    }

    let mut collectives = Vec::new();
    for (primitive, kind, bytes) in
        [("broadcast", Kind::Broadcast, BROADCAST_BYTES), ("all-to-all", Kind::AllToAll, ALL_TO_ALL_BYTES)]
    {
        println!("\n{primitive} of {} KiB through Redis", bytes >> 10);
        println!(
            "{:>4} {:>4} {:>12} {:>14} {:>14} {:>11} {:>11}",
            "N", "G", "latency ms", "remote bytes", "model", "reduction", "model red."
        );
        for n in [8u32, 16, 32, 64] {
            let baseline = plan::remote_bytes(kind, &PackLayout::homogeneous(n, 1)?, 0, bytes);
            for g in (1..=n).filter(|g| n % g == 0) {
                let model = plan::remote_bytes(kind, &PackLayout::homogeneous(n, g)?, 0, bytes);
                let (latency_ms, remote) = tokio.block_on(collective(&runtime, &microbench, primitive, n, g, bytes))?;
                ensure!(remote == model, "{primitive} N={n} G={g}: {remote} remote bytes, model {model}");
                let reduction = |b: u64| if baseline == 0 { 0.0 } else { 100.0 * (1.0 - b as f64 / baseline as f64) };
                println!(
                    "{n:>4} {g:>4} {latency_ms:>12.1} {remote:>14} {model:>14} {:>10.1}% {:>10.1}%",
                    reduction(remote),
                    reduction(model)
                );
                collectives.push(json!({ "primitive": primitive, "n": n, "g": g, "bytes": bytes,
                    "latency_ms": latency_ms, "remote_bytes": remote, "model_remote_bytes": model }));
            }
        }
    }

    let report = json!({ "benchmark": "brokers", "at_us": now_us(), "pair": pairs, "collectives": collectives });
    write_report("brokers", &report)?;
    Ok(())
}
