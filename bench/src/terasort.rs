//! Experiment 4, TeraSort: the single flare that shuffles with one
//! all-to-all against the two-stage baseline FaaS platforms run (a map
//! flare writes one run per destination to storage, a reduce flare reads
//! them), on the same generated records, at the same N and several G; total
//! and shuffle time, bytes through the broker and through storage, and the
//! single flare's speed-up (the paper reports about 2×).

use std::path::Path;

use anyhow::{Context as _, ensure};
use burst_host::OutputDir;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::flares::{Dirs, Runner, outputs, span_seconds};
use crate::plot::{Chart, Series, save};
use crate::report::{Section, table};
use crate::stats::Spread;

/// Bytes of one record.
const RECORD: u64 = 100;

/// The data set and the layouts.
pub struct Sizes {
    pub workers: u32,
    pub records_per_worker: u64,
    pub granularities: Vec<u32>,
}

/// One way of sorting at one G, measured.
#[derive(Default)]
struct Way {
    total: Vec<f64>,
    shuffle: Vec<f64>,
    broker_bytes: u64,
    storage_bytes: u64,
}

/// The number of flares [`run`] starts: one, then two, per point.
pub fn flares(sizes: &Sizes, repeats: usize) -> u64 {
    (sizes.granularities.len() * 3 * repeats) as u64
}

/// The slowest worker's phase `name`, in seconds.
fn slowest(outputs: &[Value], name: &str) -> anyhow::Result<f64> {
    let mut most = 0u64;
    for output in outputs {
        most = most.max(output["timings_us"][name].as_u64().with_context(|| format!("timings_us.{name}"))?);
    }
    Ok(most as f64 / 1e6)
}

/// A fresh output directory with room for every record, twice.
fn out_dir(bytes: u64) -> anyhow::Result<(tempfile::TempDir, OutputDir)> {
    let dir = tempfile::Builder::new().prefix("burst-bench-terasort").tempdir()?;
    let output = OutputDir::new(dir.path(), 2 * bytes);
    Ok((dir, output))
}

pub async fn run(
    runner: &Runner,
    sizes: &Sizes,
    repeats: usize,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    let program = runner.load("terasort")?;
    let n = sizes.workers;
    let bytes = u64::from(n) * sizes.records_per_worker * RECORD;
    let generate = json!({"records_per_worker": sizes.records_per_worker, "seed": 7});
    let mut points = Vec::new();
    for &g in &sizes.granularities {
        bar.set_message(format!("N={n} G={g}"));
        let (mut single, mut staged) = (Way::default(), Way::default());
        for _ in 0..repeats {
            let (_parts, output) = out_dir(bytes)?;
            let input = json!({"generate": generate, "output": "/out"});
            let result = runner.run(&program, n, g, &input, Dirs { data: None, output: Some(output) }).await?;
            let sorted = outputs(&result)?;
            single.total.push(span_seconds(&result));
            single.shuffle.push(slowest(&sorted, "shuffle")?);
            single.broker_bytes = result.bytes.remote;
            bar.inc(1);

            let (runs, output) = out_dir(bytes)?;
            let input = json!({"stage": "map", "generate": generate, "output": "/out"});
            let map = runner.run(&program, n, g, &input, Dirs { data: None, output: Some(output) }).await?;
            let mapped = outputs(&map)?;
            bar.inc(1);
            let (_parts, output) = out_dir(bytes)?;
            let input = json!({"stage": "reduce", "input": "/data", "output": "/out"});
            let dirs = Dirs { data: Some(runs.path()), output: Some(output) };
            let reduce = runner.run(&program, n, g, &input, dirs).await?;
            let reduced = outputs(&reduce)?;
            bar.inc(1);
            let untimed = |o: &Value| json!([o["records"], o["checksum"], o["first_key"], o["last_key"]]);
            ensure!(
                sorted.iter().map(untimed).eq(reduced.iter().map(untimed)),
                "G={g}: the two stages sorted otherwise than the one flare"
            );
            staged.total.push(span_seconds(&map) + span_seconds(&reduce));
            staged.shuffle.push(slowest(&mapped, "write")? + slowest(&reduced, "read")?);
            staged.broker_bytes = map.bytes.remote + reduce.bytes.remote;
            staged.storage_bytes = mapped.iter().map(|o| o["run_bytes"].as_u64().unwrap_or(0)).sum();
        }
        points.push((g, single, staged));
    }
    section(runner.backend().as_str(), sizes, bytes, &points, repeats, out)
}

fn section(
    backend: &str,
    sizes: &Sizes,
    bytes: u64,
    points: &[(u32, Way, Way)],
    repeats: usize,
    out: &Path,
) -> anyhow::Result<Section> {
    let mut rows = Vec::new();
    let mut data = Vec::new();
    let (mut one_curve, mut two_curve) = (Vec::new(), Vec::new());
    for (g, single, staged) in points {
        let spread = |v: &[f64]| Spread::of(v.to_vec()).context("repeats");
        let (one_total, two_total) = (spread(&single.total)?, spread(&staged.total)?);
        let (one_shuffle, two_shuffle) = (spread(&single.shuffle)?, spread(&staged.shuffle)?);
        let speedup = two_total.median / one_total.median;
        for (way, total, shuffle, w) in
            [("one flare", &one_total, &one_shuffle, single), ("two stages", &two_total, &two_shuffle, staged)]
        {
            rows.push(vec![
                g.to_string(),
                way.to_owned(),
                total.show(3),
                shuffle.show(3),
                format!("{:.1}", w.broker_bytes as f64 / 1048576.0),
                format!("{:.1}", w.storage_bytes as f64 / 1048576.0),
            ]);
        }
        rows.push(vec![
            g.to_string(),
            "speed-up".into(),
            format!("{speedup:.2}×"),
            String::new(),
            String::new(),
            String::new(),
        ]);
        one_curve.push((f64::from(*g), one_total.median));
        two_curve.push((f64::from(*g), two_total.median));
        data.push(json!({"granularity": g,
            "one_flare": {"total_s": one_total, "shuffle_s": one_shuffle, "broker_bytes": single.broker_bytes},
            "two_stages": {"total_s": two_total, "shuffle_s": two_shuffle, "broker_bytes": staged.broker_bytes,
                "storage_bytes": staged.storage_bytes},
            "speedup": speedup}));
    }
    let title = format!("TeraSort, N={}, {} MiB: seconds ({backend})", sizes.workers, bytes >> 20);
    let chart = Chart { title: &title, x_label: "granularity G", y_label: "s", log_x: true, log_y: false };
    let plots = vec![save(
        out,
        "terasort.svg",
        &chart.svg(&[
            Series { name: "one flare".into(), points: one_curve },
            Series { name: "two stages".into(), points: two_curve },
        ])?,
    )?];
    let text = format!(
        "The `terasort` guest on generated gensort records ({} per worker, seed 7: {} MiB in all), {} workers, \
         packs talking through `{backend}`. One flare samples, agrees on splitters and shuffles with one \
         all-to-all; the two-stage baseline runs a map flare that writes one run per destination into an \
         output directory and a reduce flare of the same N that reads them as its `/data` (the storage is \
         this machine's local disk, not an object store, which flatters the baseline). Both sorts are checked \
         to end alike worker by worker. The shuffle time is the slowest worker's `shuffle`, or the slowest \
         map `write` plus the slowest reduce `read`; the speed-up is the two stages' total over the one \
         flare's.",
        sizes.records_per_worker,
        bytes >> 20,
        sizes.workers
    );
    Ok(Section {
        title: "4. TeraSort: one flare against two stages".into(),
        text,
        settings: json!({"workers": sizes.workers, "records_per_worker": sizes.records_per_worker,
            "granularities": sizes.granularities, "repeats": repeats, "backend": backend}),
        tables: vec![table(&["G", "way", "total (s)", "shuffle (s)", "broker MiB", "storage MiB"], &rows)],
        plots,
        data: json!({"points": data}),
    })
}
