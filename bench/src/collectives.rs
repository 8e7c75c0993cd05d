//! Experiment 2, collectives against granularity: every primitive of the
//! `microbench` guest (every byte checked) at several burst sizes and every
//! granularity dividing them; latency, and the remote bytes measured beside
//! the traffic model (`burst_host::comm::plan`) and their reduction
//! relative to G = 1, as the paper's table shows it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use burst_host::PackLayout;
use burst_host::comm::{Kind, plan};
use indicatif::ProgressBar;
use serde_json::json;

use crate::flares::{Dirs, Runner, outputs};
use crate::plot::{Chart, Series, save};
use crate::report::{Section, table};
use crate::stats::Spread;

/// The primitives, as the guest names them and as the model does.
pub const PRIMITIVES: [(&str, Kind); 7] = [
    ("broadcast", Kind::Broadcast),
    ("scatter", Kind::Scatter),
    ("gather", Kind::Gather),
    ("all-gather", Kind::AllGather),
    ("all-to-all", Kind::AllToAll),
    ("reduce", Kind::Reduce),
    ("all-reduce", Kind::AllReduce),
];

/// Timed iterations inside each flare (the guest synchronises before each).
const ITERATIONS: u32 = 3;

/// Every divisor of `n`, ascending.
pub fn divisors(n: u32) -> Vec<u32> {
    (1..=n).filter(|g| n.is_multiple_of(*g)).collect()
}

/// One measured (primitive, N, G).
struct Point {
    primitive: &'static str,
    workers: u32,
    granularity: u32,
    /// Seconds: the slowest worker's median iteration, per repeat.
    latency: Spread,
    /// Remote payload bytes of one call, measured.
    remote: u64,
    /// The same, from the traffic model.
    model: u64,
}

/// The number of flares [`run`] starts.
pub fn flares(sizes: &[u32], repeats: usize) -> u64 {
    (sizes.iter().map(|&n| divisors(n).len()).sum::<usize>() * PRIMITIVES.len() * repeats) as u64
}

/// Runs the experiment at burst sizes `sizes` with `bytes` per
/// contribution.
pub async fn run(
    runner: &Runner,
    sizes: &[u32],
    bytes: u64,
    repeats: usize,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    let program = runner.load("microbench")?;
    let mut points = Vec::new();
    for &n in sizes {
        for g in divisors(n) {
            let layout = Arc::new(PackLayout::homogeneous(n, g)?);
            for (primitive, kind) in PRIMITIVES {
                bar.set_message(format!("{primitive} N={n} G={g}"));
                let input = json!({"primitive": primitive, "size": bytes, "root": 0, "iterations": ITERATIONS});
                let (mut latencies, mut remote) = (Vec::new(), 0);
                for _ in 0..repeats {
                    let result = runner.run(&program, n, g, &input, Dirs::default()).await?;
                    let mut slowest = 0u64;
                    for output in outputs(&result)? {
                        let mut us: Vec<u64> = serde_json::from_value(output["elapsed_us"].clone())?;
                        us.sort_unstable();
                        slowest = slowest.max(*us.get(us.len() / 2).context("iterations")?);
                    }
                    latencies.push(slowest as f64 / 1e6);
                    remote = result.bytes.remote / u64::from(ITERATIONS);
                    bar.inc(1);
                }
                let model = plan::remote_bytes(kind, &layout, 0, bytes);
                ensure!(remote == model, "{primitive} N={n} G={g}: {remote} remote bytes, the model says {model}");
                let latency = Spread::of(latencies).context("repeats")?;
                points.push(Point { primitive, workers: n, granularity: g, latency, remote, model });
            }
        }
    }
    section(runner.backend().as_str(), &points, sizes, bytes, repeats, out)
}

fn section(
    backend: &str,
    points: &[Point],
    sizes: &[u32],
    bytes: u64,
    repeats: usize,
    out: &Path,
) -> anyhow::Result<Section> {
    let at_g1 =
        |p: &Point| points.iter().find(|q| q.primitive == p.primitive && q.workers == p.workers && q.granularity == 1);
    let mut rows = Vec::new();
    let mut data = Vec::new();
    for p in points {
        let base = at_g1(p).map_or(p.remote, |q| q.remote);
        let reduction = if base == 0 { 0.0 } else { 100.0 * (1.0 - p.remote as f64 / base as f64) };
        let speedup = at_g1(p).map_or(1.0, |q| q.latency.median / p.latency.median);
        rows.push(vec![
            p.primitive.to_owned(),
            p.workers.to_string(),
            p.granularity.to_string(),
            p.latency.show(4),
            format!("{:.2}", p.remote as f64 / 1048576.0),
            format!("{reduction:.1} %"),
            format!("{speedup:.2}×"),
        ]);
        data.push(json!({"primitive": p.primitive, "workers": p.workers, "granularity": p.granularity,
            "latency_s": p.latency, "remote_bytes": p.remote, "model_remote_bytes": p.model,
            "remote_reduction_vs_g1": reduction / 100.0, "speedup_vs_g1": speedup}));
    }
    let mut plots = Vec::new();
    for (primitive, _) in PRIMITIVES {
        let series: Vec<Series> = sizes
            .iter()
            .map(|&n| Series {
                name: format!("N={n}"),
                points: points
                    .iter()
                    .filter(|p| p.primitive == primitive && p.workers == n)
                    .map(|p| (f64::from(p.granularity), p.latency.median * 1000.0))
                    .collect(),
            })
            .collect();
        let title = format!("{primitive} of {} KiB per worker ({backend})", bytes / 1024);
        let chart = Chart {
            title: &title,
            x_label: "granularity G (workers per pack)",
            y_label: "ms",
            log_x: true,
            log_y: false,
        };
        plots.push(save(out, &format!("collective-{primitive}.svg"), &chart.svg(&series)?)?);
    }
    let text = format!(
        "Each flare runs one primitive {ITERATIONS} times on the `microbench` guest (payloads checked byte by \
         byte), packs talking through `{backend}`; latency is the slowest worker's median iteration, from a \
         barrier to the end of its communication. Remote bytes are measured per call and asserted equal to \
         the traffic model (broadcast B·(P−1), all-to-all B·N·(N−G), …); the reduction and the speed-up are \
         relative to G = 1 at the same N."
    );
    Ok(Section {
        title: "2. Collectives against granularity".into(),
        text,
        settings: json!({"sizes": sizes, "bytes": bytes, "iterations": ITERATIONS, "repeats": repeats, "backend": backend}),
        tables: vec![table(
            &["primitive", "N", "G", "latency (s)", "remote MiB", "remote traffic saved", "speed-up"],
            &rows,
        )],
        plots,
        data: json!({"points": data}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_divisor_is_a_granularity() {
        assert_eq!(divisors(8), [1, 2, 4, 8]);
        assert_eq!(divisors(12), [1, 2, 3, 4, 6, 12]);
        assert_eq!(flares(&[8, 16], 3), (4 + 5) * 7 * 3);
    }
}
