//! Wasm compute against native code: the microbench's payload generation and
//! verification (`examples/microbench/src/payload.rs`), built from the same
//! source for this machine and for `wasm32-wasip2`, timed on the same bytes
//! in the same run. The Wasm side runs as a one-worker flare of the
//! microbench's `compute` primitive, so it includes everything a worker
//! pays: epoch checks, bounds checks (elided by the pooling allocator's
//! guard reservation), and growing its linear memory.
//!
//! `cargo bench -p burst-controller --bench compute` prints the table and
//! writes `target/bench/compute.json` (or `$BURST_BENCH_JSON`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use burst_host::result::now_us;
use burst_host::{FlareSpec, PackLayout, Runtime, RuntimeConfig};
use bytes::Bytes;
use serde_json::{Value, json};

mod support;

use support::{guests, median, write_report};

#[path = "../../examples/microbench/src/payload.rs"]
mod payload;

const SIZES: [usize; 2] = [16 << 20, 128 << 20];
const ITERATIONS: u32 = 7;

fn spread(values: &[f64]) -> (f64, f64) {
    (values.iter().copied().fold(f64::INFINITY, f64::min), values.iter().copied().fold(0.0, f64::max))
}

fn native_ms(size: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let data = payload::pattern(0, 0, std::hint::black_box(size));
        ensure!(payload::first_mismatch(std::hint::black_box(&data), 0, 0).is_none(), "native payload mismatch");
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

fn main() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Runtime::new()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let microbench = runtime.load(&std::fs::read(guests::guest_path("microbench"))?, None)?;
    let mut rows = Vec::new();
    println!("{:>9} {:>18} {:>18} {:>12}", "payload", "native ms", "wasm ms", "wasm/native");
    for size in SIZES {
        let input = json!({ "primitive": "compute", "size": size, "iterations": ITERATIONS });
        let spec = FlareSpec::new(
            format!("compute-{size}"),
            Arc::new(PackLayout::homogeneous(1, 1)?),
            vec![Bytes::from(serde_json::to_vec(&input)?)],
            Duration::from_secs(600),
        );
        let result = tokio.block_on(burst_host::run_flare(&runtime, &microbench, &spec))?;
        let output: Value =
            serde_json::from_slice(result.workers[0].outcome.as_ref().map_err(|f| anyhow::anyhow!("{f}"))?)?;
        ensure!(output["checked_bytes"] == size as u64 * u64::from(ITERATIONS), "{output}");
        let wasm: Vec<f64> = output["elapsed_us"]
            .as_array()
            .context("timings")?
            .iter()
            .filter_map(Value::as_f64)
            .map(|us| us / 1e3)
            .collect();
        let native = native_ms(size)?;
        let ratio = median(wasm.clone()) / median(native.clone());
        let ((native_min, native_max), (wasm_min, wasm_max)) = (spread(&native), spread(&wasm));
        println!(
            "{:>5} MiB {:>7.1} ({native_min:.0}–{native_max:.0}) {:>7.1} ({wasm_min:.0}–{wasm_max:.0}) {ratio:>12.2}",
            size >> 20,
            median(native.clone()),
            median(wasm.clone()),
        );
        rows.push(json!({ "bytes": size, "native_ms": native, "wasm_ms": wasm, "ratio_of_medians": ratio }));
    }
    let report = json!({ "benchmark": "compute", "at_us": now_us(), "iterations": ITERATIONS, "rows": rows });
    write_report("compute", &report)?;
    Ok(())
}
