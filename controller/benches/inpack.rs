//! Every primitive inside one pack (G = N) against the two-copy floor.
//!
//! A component copies into its own linear memory, so one copy out of each
//! sender and one into each receiver is the least any collective can cost
//! inside a pack. The floor of a primitive is the bytes it must copy out
//! and in, at the bandwidth of `memcpy` between pre-touched buffers
//! measured in this process and run. Each primitive runs `ITERATIONS`
//! times; the figure is the median over iterations of the slowest worker's
//! time (the microbench times from a barrier to the end of its call), and
//! every delivered byte is checked.
//!
//! `cargo bench -p burst-controller --bench inpack` prints the table and
//! writes `target/bench/inpack.json` (or `$BURST_BENCH_JSON`);
//! `INPACK_ONLY=reduce,all-reduce` runs only those primitives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use burst_host::result::now_us;
use burst_host::{FlareSpec, PackLayout, Runtime, RuntimeConfig};
use bytes::Bytes;
use serde_json::{Value, json};

mod support;

use support::{guests, median, write_report};

const ITERATIONS: u32 = 5;
/// (N, bytes per message): all-to-all at N = 8 moves 8 MiB per pair, the
/// issue's reference point; larger N use smaller parts to fit memory.
const CONFIGS: [(u32, u64); 3] = [(8, 8 << 20), (16, 2 << 20), (32, 512 << 10)];
const PRIMITIVES: [&str; 8] =
    ["pair", "broadcast", "scatter", "gather", "all-gather", "all-to-all", "reduce", "all-reduce"];

/// Bytes a primitive must copy out of senders and into receivers.
fn floor_bytes(primitive: &str, n: u64, s: u64) -> u64 {
    match primitive {
        "pair" => 2 * s,
        "broadcast" => s + n * s,
        "scatter" | "gather" | "all-reduce" => 2 * n * s,
        "all-gather" => n * s + n * n * s,
        "all-to-all" => 2 * n * n * s,
        "reduce" => n * s + s,
        other => unreachable!("no floor for {other}"),
    }
}

fn memcpy_bytes_per_s(bytes: usize) -> f64 {
    let source: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut target = vec![0u8; bytes];
    let mut rates = Vec::new();
    for _ in 0..9 {
        let start = Instant::now();
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&target);
        rates.push(bytes as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

fn main() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Runtime::new()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let microbench = runtime.load(&std::fs::read(guests::guest_path("microbench"))?, None)?;
    let memcpy = memcpy_bytes_per_s(64 << 20);
    let mut rows = Vec::new();
    println!("memcpy of pre-touched buffers: {:.2} GiB/s\n", memcpy / f64::from(1 << 30));
    println!("{:<11} {:>3} {:>9} {:>11} {:>11} {:>9}", "primitive", "N", "message", "time ms", "floor ms", "of floor");
    let only = std::env::var("INPACK_ONLY").ok();
    let chosen = |primitive: &str| only.as_deref().is_none_or(|only| only.split(',').any(|p| p == primitive));
    for (n, size) in CONFIGS {
        for primitive in PRIMITIVES.into_iter().filter(|p| chosen(p)) {
            // The reduce kernels take u64 elements; a pair is two workers.
            let workers = if primitive == "pair" { 2 } else { n };
            let input = json!({ "primitive": primitive, "size": size, "iterations": ITERATIONS });
            let spec = FlareSpec::new(
                format!("inpack-{primitive}-{n}"),
                Arc::new(PackLayout::homogeneous(workers, workers)?),
                vec![Bytes::from(serde_json::to_vec(&input)?); workers as usize],
                Duration::from_secs(600),
            );
            let result = tokio.block_on(burst_host::run_flare(&runtime, &microbench, &spec))?;
            if let Some(failure) = &result.failure {
                anyhow::bail!("{primitive} N={n}: {failure}");
            }
            let mut slowest = vec![0f64; ITERATIONS as usize];
            for worker in &result.workers {
                let output: Value =
                    serde_json::from_slice(worker.outcome.as_ref().map_err(|f| anyhow::anyhow!("{f}"))?)?;
                let times = output["elapsed_us"].as_array().context("timings")?;
                ensure!(times.len() == ITERATIONS as usize, "{output}");
                for (slot, time) in slowest.iter_mut().zip(times) {
                    *slot = slot.max(time.as_f64().context("a time")? / 1e3);
                }
            }
            let time_ms = median(slowest.clone());
            let floor_ms = floor_bytes(primitive, u64::from(workers), size) as f64 / memcpy * 1e3;
            println!(
                "{primitive:<11} {workers:>3} {:>5} KiB {time_ms:>11.2} {floor_ms:>11.2} {:>8.0} %",
                size >> 10,
                floor_ms / time_ms * 100.0
            );
            rows.push(json!({
                "primitive": primitive, "workers": workers, "bytes": size, "iterations": ITERATIONS,
                "time_ms": time_ms, "time_ms_per_iteration": slowest, "floor_ms": floor_ms,
                "share_of_floor": floor_ms / time_ms,
            }));
        }
    }
    let report = json!({ "benchmark": "inpack", "at_us": now_us(), "memcpy_bytes_per_s": memcpy, "rows": rows });
    write_report("inpack", &report)?;
    Ok(())
}
