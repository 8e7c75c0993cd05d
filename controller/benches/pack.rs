//! Benchmarks of one pack: start-up of 1,000 workers, memory of 10,000, and
//! local send/recv bandwidth next to `memcpy` measured in the same process.
//!
//! `cargo bench -p burst-controller --bench pack` prints a table and writes
//! JSON to `target/bench/pack.json` (or `$BURST_BENCH_JSON`), so runs can be
//! compared. Every flare's outputs are checked before a figure is kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use burst_host::result::now_us;
use burst_host::{FlareResult, FlareSpec, PackLayout, Program, Runtime, RuntimeConfig};
use bytes::Bytes;
use serde_json::{Value, json};

mod support;

use support::{guests, median, write_report};

const STARTUP_WORKERS: u32 = 1_000;
const STARTUP_RUNS: usize = 7;
const DENSE_WORKERS: u32 = 10_000;
const PAIR_BYTES: usize = 64 << 20;
const PAIR_ITERATIONS: u32 = 9;

async fn flare(runtime: &Arc<Runtime>, program: &Program, workers: u32, input: &Value) -> anyhow::Result<FlareResult> {
    let spec = FlareSpec::new(
        format!("bench-{workers}"),
        Arc::new(PackLayout::homogeneous(workers, workers)?),
        vec![Bytes::from(serde_json::to_vec(input)?); workers as usize],
        Duration::from_secs(600),
    );
    let result = burst_host::run_flare(runtime, program, &spec).await?;
    if let Some(failure) = &result.failure {
        anyhow::bail!("flare failed: {failure}");
    }
    Ok(result)
}

fn check_hello(result: &FlareResult, workers: u32) -> anyhow::Result<()> {
    let expected = u64::from(workers) * u64::from(workers - 1) / 2;
    for w in &result.workers {
        let output: Value = serde_json::from_slice(w.outcome.as_ref().map_err(|f| anyhow::anyhow!("{f}"))?)?;
        ensure!(output["sum_of_ids"] == expected, "worker {}: {output}", w.worker_id);
    }
    Ok(())
}

/// Peak resident set of this process, from /proc.
fn peak_rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
    Ok(kib * 1024)
}

fn memcpy_gib_per_s(bytes: usize) -> f64 {
    let source: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut target = vec![0u8; bytes];
    let mut rates = Vec::new();
    for _ in 0..9 {
        let start = Instant::now();
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&target);
        rates.push(bytes as f64 / start.elapsed().as_secs_f64() / f64::from(1 << 30));
    }
    median(rates)
}

fn main() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Runtime::new()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let load =
        |name: &str| -> anyhow::Result<Program> { Ok(runtime.load(&std::fs::read(guests::guest_path(name))?, None)?) };
    let (hello, microbench) = (load("hello")?, load("microbench")?);

    let (startup, dense, pair) = tokio.block_on(async {
        let mut started = Vec::new();
        let mut spread = Vec::new();
        let mut total = Vec::new();
        for _ in 0..STARTUP_RUNS {
            let called = now_us();
            let result = flare(&runtime, &hello, STARTUP_WORKERS, &Value::Null).await?;
            check_hello(&result, STARTUP_WORKERS)?;
            let first = result.workers.iter().map(|w| w.start_us).min().unwrap_or(called);
            let last = result.workers.iter().map(|w| w.start_us).max().unwrap_or(called);
            let end = result.workers.iter().map(|w| w.end_us).max().unwrap_or(called);
            started.push((last - called) as f64 / 1e3);
            spread.push((last - first) as f64 / 1e3);
            total.push((end - called) as f64 / 1e3);
        }
        let startup = json!({
            "workers": STARTUP_WORKERS,
            "runs": STARTUP_RUNS,
            "all_started_ms": median(started),
            "start_spread_ms": median(spread),
            "total_ms": median(total),
        });

        let called = Instant::now();
        let result = flare(&runtime, &hello, DENSE_WORKERS, &Value::Null).await?;
        check_hello(&result, DENSE_WORKERS)?;
        let dense = json!({
            "workers": DENSE_WORKERS,
            "total_ms": called.elapsed().as_secs_f64() * 1e3,
            "peak_rss_mib": peak_rss_bytes()? as f64 / f64::from(1 << 20),
        });

        let input = json!({ "primitive": "pair", "size": PAIR_BYTES, "iterations": PAIR_ITERATIONS });
        let result = flare(&runtime, &microbench, 2, &input).await?;
        let receiver: Value =
            serde_json::from_slice(result.workers[1].outcome.as_ref().map_err(|f| anyhow::anyhow!("{f}"))?)?;
        ensure!(receiver["checked_bytes"] == PAIR_BYTES as u64 * u64::from(PAIR_ITERATIONS), "{receiver}");
        let times: Vec<f64> =
            receiver["elapsed_us"].as_array().context("timings")?.iter().filter_map(Value::as_f64).collect();
        let pair_rate = PAIR_BYTES as f64 / (median(times) / 1e6) / f64::from(1 << 30);
        let memcpy_rate = memcpy_gib_per_s(PAIR_BYTES);
        let pair = json!({
            "bytes": PAIR_BYTES,
            "iterations": PAIR_ITERATIONS,
            "send_recv_gib_per_s": pair_rate,
            "memcpy_gib_per_s": memcpy_rate,
            "ratio": pair_rate / memcpy_rate,
        });
        anyhow::Ok((startup, dense, pair))
    })?;

    let figure = |section: &Value, key: &str| section[key].as_f64().unwrap_or(f64::NAN);
    let rows = [
        ("1,000 workers: call to all inside work", format!("{:.1} ms", figure(&startup, "all_started_ms")), "< 50 ms"),
        ("1,000 workers: spread of start times", format!("{:.1} ms", figure(&startup, "start_spread_ms")), "< 20 ms"),
        ("1,000 workers: call to last worker done", format!("{:.1} ms", figure(&startup, "total_ms")), ""),
        ("10,000 workers: peak RSS of the process", format!("{:.0} MiB", figure(&dense, "peak_rss_mib")), "< 1024 MiB"),
        ("64 MiB local send/recv", format!("{:.2} GiB/s", figure(&pair, "send_recv_gib_per_s")), ""),
        ("64 MiB memcpy (same process, same run)", format!("{:.2} GiB/s", figure(&pair, "memcpy_gib_per_s")), ""),
        ("send/recv as a share of memcpy", format!("{:.0} %", figure(&pair, "ratio") * 100.0), ">= 50 %"),
    ];
    println!("{:<44} {:>12} {:>12}", "measure", "value", "goal");
    for (measure, value, goal) in rows {
        println!("{measure:<44} {value:>12} {goal:>12}");
    }

    let report = json!({ "benchmark": "pack", "at_us": now_us(), "startup": startup, "dense": dense, "pair": pair });
    write_report("pack", &report)?;
    Ok(())
}
