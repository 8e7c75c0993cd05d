//! Experiment 3, PageRank against granularity (the paper's table: 98.5 %
//! less remote traffic and a 13× speed-up from packing): the `pagerank`
//! guest on a generated power-law graph, one burst size at every
//! granularity dividing it, a fixed number of iterations so that every G
//! does the same work; remote bytes per iteration, time per iteration and
//! in all, and each G's traffic reduction and speed-up relative to G = 1.

use std::path::Path;

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::collectives::divisors;
use crate::flares::{Dirs, Runner, outputs, span_seconds};
use crate::plot::{Chart, Series, save};
use crate::report::{Section, table};
use crate::stats::Spread;

/// Iterations of every flare (tolerance 0: none stops early).
const ITERATIONS: u32 = 10;

/// The graph and the burst.
pub struct Sizes {
    pub workers: u32,
    pub nodes: u64,
    pub edges_per_node: f64,
}

struct Point {
    granularity: u32,
    edges: u64,
    /// Remote payload bytes of the flare, the edge shuffle included.
    remote: u64,
    /// Seconds of worker 0's iterations, per iteration.
    iteration: Spread,
    /// Seconds from the first worker's start to the last one's end.
    total: Spread,
}

/// The number of flares [`run`] starts.
pub fn flares(sizes: &Sizes, repeats: usize) -> u64 {
    (divisors(sizes.workers).len() * repeats) as u64
}

pub async fn run(
    runner: &Runner,
    sizes: &Sizes,
    repeats: usize,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    let program = runner.load("pagerank")?;
    let n = sizes.workers;
    let input = json!({
        "generate": {"nodes": sizes.nodes, "edges_per_node": sizes.edges_per_node, "seed": 1},
        "tolerance": 0.0,
        "max_iterations": ITERATIONS,
    });
    let mut points = Vec::new();
    for g in divisors(n) {
        bar.set_message(format!("N={n} G={g}"));
        let (mut iteration, mut total, mut remote, mut edges) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..repeats {
            let result = runner.run(&program, n, g, &input, Dirs::default()).await?;
            let first: Value = outputs(&result)?.swap_remove(0);
            let iterations = first["iterations"].as_f64().context("iterations")?;
            iteration.push(first["seconds"]["iterate"].as_f64().context("seconds.iterate")? / iterations);
            total.push(span_seconds(&result));
            (remote, edges) = (result.bytes.remote, first["edges"].as_u64().context("edges")?);
            bar.inc(1);
        }
        let (iteration, total) = (Spread::of(iteration).context("repeats")?, Spread::of(total).context("repeats")?);
        points.push(Point { granularity: g, edges, remote, iteration, total });
    }
    section(runner.backend().as_str(), sizes, &points, repeats, out)
}

fn section(backend: &str, sizes: &Sizes, points: &[Point], repeats: usize, out: &Path) -> anyhow::Result<Section> {
    let base = points.first().context("no points")?;
    let per_iteration = |p: &Point| p.remote as f64 / f64::from(ITERATIONS);
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for p in points {
        let saved = if base.remote == 0 { 0.0 } else { 1.0 - p.remote as f64 / base.remote as f64 };
        let speedup = base.total.median / p.total.median;
        rows.push(vec![
            p.granularity.to_string(),
            format!("{:.2}", per_iteration(p) / 1048576.0),
            format!("{:.1} %", 100.0 * saved),
            p.iteration.show(4),
            p.total.show(3),
            format!("{speedup:.2}×"),
        ]);
        data.push(json!({"granularity": p.granularity, "edges": p.edges, "remote_bytes": p.remote,
            "remote_bytes_per_iteration": per_iteration(p), "iteration_s": p.iteration, "total_s": p.total,
            "remote_reduction_vs_g1": saved, "speedup_vs_g1": speedup}));
    }
    let curve = |f: &dyn Fn(&Point) -> f64| points.iter().map(|p| (f64::from(p.granularity), f(p))).collect();
    let titles = [
        format!("PageRank, N={}: remote MiB per iteration ({backend})", sizes.workers),
        format!("PageRank, N={}: seconds ({backend})", sizes.workers),
    ];
    let traffic = Chart { title: &titles[0], x_label: "granularity G", y_label: "MiB", log_x: true, log_y: false };
    let time = Chart { title: &titles[1], y_label: "s", ..traffic };
    let plots = vec![
        save(
            out,
            "pagerank-traffic.svg",
            &traffic.svg(&[Series { name: "remote".into(), points: curve(&|p| per_iteration(p) / 1048576.0) }])?,
        )?,
        save(
            out,
            "pagerank-time.svg",
            &time.svg(&[
                Series { name: "total".into(), points: curve(&|p| p.total.median) },
                Series { name: "per iteration".into(), points: curve(&|p| p.iteration.median) },
            ])?,
        )?,
    ];
    let text = format!(
        "The `pagerank` guest on the power-law graph it generates ({} nodes, {} edges per node, seed 1; {} \
         distinct edges), {} workers, packs talking through `{backend}`, {ITERATIONS} iterations at every G \
         (tolerance 0). Each iteration's contributions are summed by a pack-aware reduce at worker 0, which \
         broadcasts the new ranks: remote traffic per iteration falls with the number of packs. Remote bytes \
         per iteration are the flare's remote payload bytes over its iterations (the one-off edge shuffle \
         included); the time per iteration is worker 0's; the total is from the first worker's start to the \
         last one's end. Reduction and speed-up are relative to G = 1.",
        sizes.nodes, sizes.edges_per_node, base.edges, sizes.workers
    );
    Ok(Section {
        title: "3. PageRank against granularity".into(),
        text,
        settings: json!({"workers": sizes.workers, "nodes": sizes.nodes, "edges_per_node": sizes.edges_per_node,
            "iterations": ITERATIONS, "repeats": repeats, "backend": backend}),
        tables: vec![table(
            &["G", "remote MiB / iteration", "remote traffic saved", "s / iteration", "total (s)", "speed-up"],
            &rows,
        )],
        plots,
        data: json!({"points": data}),
    })
}
