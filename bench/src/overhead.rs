//! Experiment 6, what WebAssembly costs: each workload's compute kernel
//! (its `kernel.rs`: the part of the job that only computes, on one worker)
//! built from the same source for `wasm32-wasip2`, run by the pack host on
//! a `{"kernel": …}` input, and natively, linked into this binary; both
//! time the kernel from inside and digest its result, so the two builds
//! are seen to compute the same bits. The runs of the two alternate.

use anyhow::{Context as _, ensure};
use burst_guest_sdk::kernel::Report;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::flares::{Dirs, Runner, outputs};
use crate::report::{Section, table};
use crate::stats::Spread;

/// The kernels' data.
pub struct Sizes {
    pub pagerank_nodes: u64,
    pub terasort_records: u64,
    pub search_rows: u64,
    pub kmeans_points: u64,
}

/// Each workload and its kernel's input.
fn kernels(sizes: &Sizes) -> [(&'static str, Value); 4] {
    [
        (
            "pagerank",
            json!({"generate": {"nodes": sizes.pagerank_nodes, "edges_per_node": 8.0, "seed": 1},
            "iterations": 10}),
        ),
        ("terasort", json!({"records": sizes.terasort_records, "seed": 7, "parts": 16})),
        (
            "gridsearch",
            json!({"generate": {"rows": sizes.search_rows, "features": 32, "noise": 0.5, "seed": 3},
            "alphas": (0..16).map(|i| 1e-3 * 10f64.powi(i / 3)).collect::<Vec<f64>>(), "folds": 5}),
        ),
        (
            "kmeans",
            json!({"generate": {"points": sizes.kmeans_points, "dimensions": 4, "clusters": 8, "seed": 3},
            "k": 8, "iterations": 10}),
        ),
    ]
}

/// The number of runs [`run`] makes (each native run and each flare).
pub fn runs(repeats: usize) -> u64 {
    (2 * 4 * repeats) as u64
}

/// The same kernel, built natively.
fn native(workload: &str, spec: Value) -> anyhow::Result<Report> {
    let invalid = |e| anyhow::anyhow!("kernel input of {workload}: {e}");
    let report = match workload {
        "pagerank" => pagerank::kernel::run(serde_json::from_value(spec).map_err(invalid)?),
        "terasort" => terasort::kernel::run(serde_json::from_value(spec).map_err(invalid)?),
        "gridsearch" => gridsearch::kernel::run(serde_json::from_value(spec).map_err(invalid)?),
        "kmeans" => kmeans::kernel::run(serde_json::from_value(spec).map_err(invalid)?),
        other => anyhow::bail!("no kernel named {other}"),
    };
    report.map_err(|e| anyhow::anyhow!("native {workload} kernel: {e}"))
}

/// One workload, measured both ways.
struct Point {
    workload: &'static str,
    native: Spread,
    wasm: Spread,
    same_result: bool,
}

pub async fn run(runner: &Runner, sizes: &Sizes, repeats: usize, bar: &ProgressBar) -> anyhow::Result<Section> {
    let mut points = Vec::new();
    for (workload, spec) in kernels(sizes) {
        let program = runner.load(workload)?;
        let input = json!({"kernel": spec});
        let (mut native_s, mut wasm_s, mut digests) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            bar.set_message(format!("{workload} native"));
            let spec = spec.clone();
            let report = tokio::task::spawn_blocking(move || native(workload, spec)).await??;
            native_s.push(report.seconds);
            digests.push(report.digest);
            bar.inc(1);
            bar.set_message(format!("{workload} wasm"));
            let result = runner.run(&program, 1, 1, &input, Dirs::default()).await?;
            let output = outputs(&result)?.swap_remove(0);
            let report: Report = serde_json::from_value(output).context("the guest's kernel report")?;
            wasm_s.push(report.seconds);
            digests.push(report.digest);
            bar.inc(1);
        }
        ensure!(!digests.is_empty(), "no repeats");
        let same_result = digests.iter().all(|d| *d == digests[0]);
        let spread = |v| Spread::of(v).context("repeats");
        points.push(Point { workload, native: spread(native_s)?, wasm: spread(wasm_s)?, same_result });
    }
    section(sizes, &points, repeats)
}

fn section(sizes: &Sizes, points: &[Point], repeats: usize) -> anyhow::Result<Section> {
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for p in points {
        let ratio = p.wasm.median / p.native.median;
        rows.push(vec![
            p.workload.to_owned(),
            p.native.show(4),
            p.wasm.show(4),
            format!("{ratio:.2}×"),
            if p.same_result { "yes" } else { "NO" }.to_owned(),
        ]);
        data.push(json!({"workload": p.workload, "native_seconds": p.native, "wasm_seconds": p.wasm,
            "ratio": ratio, "same_result": p.same_result}));
    }
    let text = format!(
        "Each workload's compute kernel (`examples/*/src/kernel.rs`) on one worker, without communication: \
         PageRank's 10 power iterations over a generated graph of {} nodes (8 edges per node); TeraSort's \
         partition (16 parts) and sort of {} records; the grid search's 16 alphas × 5 folds on {} rows of 32 \
         features; k-means' 10 Lloyd steps over {} points of 4 dimensions, k = 8. The `wasm32-wasip2` build \
         runs in the pack host (wasmtime, Cranelift), the native build is linked into the benchmark and built \
         with its profile (compare a `--release` run only); each times the kernel itself, data generation \
         excluded. The ratio is wasm over native; \"same result\" says whether every run of both builds \
         produced the same digest of the result's bits.",
        sizes.pagerank_nodes, sizes.terasort_records, sizes.search_rows, sizes.kmeans_points
    );
    Ok(Section {
        title: "6. WebAssembly overhead: the same kernels, native and in Wasm".into(),
        text,
        settings: json!({"pagerank_nodes": sizes.pagerank_nodes, "terasort_records": sizes.terasort_records,
            "search_rows": sizes.search_rows, "kmeans_points": sizes.kmeans_points, "repeats": repeats}),
        tables: vec![table(&["workload", "native (s)", "wasm (s)", "wasm / native", "same result"], &rows)],
        plots: Vec::new(),
        data: json!({"points": data}),
    })
}
