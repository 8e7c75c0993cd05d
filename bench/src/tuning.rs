//! Experiment 5, hyperparameter search and k-means against N and G: the
//! `gridsearch` guest (a ridge-regression grid scored by k-fold
//! cross-validation, the grid shared out, the scores gathered) and the
//! `kmeans` guest (Lloyd's algorithm, an all-reduce of sums and counts per
//! iteration) on generated data, at several burst sizes and granularities;
//! the time of each flare, and the speed-up over one worker.

use std::path::Path;

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::collectives::divisors;
use crate::flares::{Dirs, Runner, outputs, span_seconds};
use crate::plot::{Chart, Series, save};
use crate::report::{Section, table};
use crate::stats::Spread;

/// The two jobs' data and bursts.
pub struct Sizes {
    /// Burst sizes; each runs at G = 1, an intermediate divisor and G = N.
    pub workers: Vec<u32>,
    pub search_rows: u64,
    pub search_features: u64,
    pub search_alphas: usize,
    pub kmeans_points: u64,
    pub kmeans_dimensions: u64,
    pub kmeans_clusters: u64,
}

/// G = 1, the middle divisor and G = N (fewer when N is small).
fn granularities(n: u32) -> Vec<u32> {
    let all = divisors(n);
    let mut some = vec![1, all[all.len() / 2], n];
    some.dedup();
    some
}

/// The number of flares [`run`] starts.
pub fn flares(sizes: &Sizes, repeats: usize) -> u64 {
    let layouts: usize = sizes.workers.iter().map(|&n| granularities(n).len()).sum();
    (2 * (layouts + 1) * repeats) as u64
}

/// One job at one (N, G).
struct Point {
    job: &'static str,
    workers: u32,
    granularity: u32,
    seconds: Spread,
}

pub async fn run(
    runner: &Runner,
    sizes: &Sizes,
    repeats: usize,
    out: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    let alphas: Vec<f64> = (0..sizes.search_alphas).map(|i| 1e-3 * 10f64.powf(i as f64 * 6.0 / 100.0)).collect();
    let search = json!({
        "generate": {"rows": sizes.search_rows, "features": sizes.search_features, "noise": 0.5, "seed": 3},
        "alphas": alphas,
        "folds": 5,
    });
    let kmeans = json!({
        "generate": {"points": sizes.kmeans_points, "dimensions": sizes.kmeans_dimensions,
            "clusters": sizes.kmeans_clusters, "seed": 3},
        "k": sizes.kmeans_clusters,
        "tolerance": 1e-9,
    });
    let mut points = Vec::new();
    for (job, input) in [("gridsearch", &search), ("kmeans", &kmeans)] {
        let program = runner.load(job)?;
        // One worker first: the base of every speed-up.
        let layouts = std::iter::once((1, 1))
            .chain(sizes.workers.iter().flat_map(|&n| granularities(n).into_iter().map(move |g| (n, g))));
        for (n, g) in layouts {
            bar.set_message(format!("{job} N={n} G={g}"));
            let mut seconds = Vec::new();
            for _ in 0..repeats {
                let result = runner.run(&program, n, g, input, Dirs::default()).await?;
                let first: Value = outputs(&result)?.swap_remove(0);
                // Worker 0 holds the answer: a flare that ran is one that answered.
                first.get(if job == "kmeans" { "centroids" } else { "best" }).context("no answer at worker 0")?;
                seconds.push(span_seconds(&result));
                bar.inc(1);
            }
            points.push(Point { job, workers: n, granularity: g, seconds: Spread::of(seconds).context("repeats")? });
        }
    }
    section(runner.backend().as_str(), sizes, &points, repeats, out)
}

fn section(backend: &str, sizes: &Sizes, points: &[Point], repeats: usize, out: &Path) -> anyhow::Result<Section> {
    let mut rows = Vec::new();
    let mut data = Vec::new();
    let mut plots = Vec::new();
    for job in ["gridsearch", "kmeans"] {
        let mine: Vec<&Point> = points.iter().filter(|p| p.job == job).collect();
        let base = mine.first().context("no points")?.seconds.median;
        for p in &mine {
            let speedup = base / p.seconds.median;
            rows.push(vec![
                job.to_owned(),
                p.workers.to_string(),
                p.granularity.to_string(),
                p.seconds.show(3),
                format!("{speedup:.2}×"),
            ]);
            data.push(json!({"job": job, "workers": p.workers, "granularity": p.granularity,
                "seconds": p.seconds, "speedup_vs_one_worker": speedup}));
        }
        let series: Vec<Series> = sizes
            .workers
            .iter()
            .map(|&n| Series {
                name: format!("N={n}"),
                points: mine
                    .iter()
                    .filter(|p| p.workers == n)
                    .map(|p| (f64::from(p.granularity), p.seconds.median))
                    .collect(),
            })
            .collect();
        let title = format!("{job}: seconds ({backend})");
        let chart = Chart { title: &title, x_label: "granularity G", y_label: "s", log_x: true, log_y: false };
        plots.push(save(out, &format!("{job}.svg"), &chart.svg(&series)?)?);
    }
    let text = format!(
        "`gridsearch`: {} alphas (log-spaced from 0.001), 5-fold cross-validation of ridge regression on {} \
         generated rows of {} features. `kmeans`: {} generated points of {} dimensions, k = {}, to convergence \
         (tolerance 1e-9). Packs talk through `{backend}`; the time is from the first worker's start to the \
         last one's end; the speed-up is over one worker.",
        sizes.search_alphas,
        sizes.search_rows,
        sizes.search_features,
        sizes.kmeans_points,
        sizes.kmeans_dimensions,
        sizes.kmeans_clusters
    );
    Ok(Section {
        title: "5. Hyperparameter search and k-means against N and G".into(),
        text,
        settings: json!({"workers": sizes.workers, "search_rows": sizes.search_rows,
            "search_features": sizes.search_features, "search_alphas": sizes.search_alphas,
            "kmeans_points": sizes.kmeans_points, "kmeans_dimensions": sizes.kmeans_dimensions,
            "kmeans_clusters": sizes.kmeans_clusters, "repeats": repeats, "backend": backend}),
        tables: vec![table(&["job", "N", "G", "seconds", "speed-up"], &rows)],
        plots,
        data: json!({"points": data}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_granularities_at_most() {
        assert_eq!(granularities(1), [1]);
        assert_eq!(granularities(2), [1, 2]);
        assert_eq!(granularities(8), [1, 4, 8]);
        assert_eq!(granularities(12), [1, 4, 12]);
    }
}
