//! Experiment 7, what a Python work function costs: the Python twins of
//! `hello` and `kmeans` (`examples/python`, built with `burst-py`) beside
//! their Rust originals. It measures the build (`burst-py build`), the
//! compile of the component by the pack host (cold, into the compiled
//! artifact cache, and from it), a pack of N `hello` workers (its time and
//! how far the resident set rose, so that per-worker figures are
//! differences over N), and k-means' Lloyd steps.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use burst_host::Program;
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::flares::{Dirs, Runner, outputs, span_seconds};
use crate::guests;
use crate::report::{Section, table};
use crate::stats::Spread;

/// What the experiment sizes.
pub struct Sizes {
    /// Pack sizes of `hello` (one pack each).
    pub packs: Vec<u32>,
    /// k-means: workers (one pack) and points (4 dimensions, k = 8).
    pub kmeans_workers: u32,
    pub kmeans_points: u64,
}

/// Most Lloyd steps of the k-means comparison (tolerance 0: it stops
/// earlier only once no centroid moves at all).
const KMEANS_STEPS: u32 = 10;

/// The number of steps [`run`] makes, for its progress bar.
pub fn runs(sizes: &Sizes, repeats: usize) -> u64 {
    (1 + 2 * 3 + repeats * (2 * sizes.packs.len() + 2)) as u64
}

/// This process's resident set, in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or("0");
    kib.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
}

/// A flare of `workers` in one pack, with this process's resident set
/// sampled every millisecond while it runs: its wall time and how far the
/// resident set rose above where it was before.
async fn pack(runner: &Runner, program: &Program, workers: u32) -> anyhow::Result<(f64, f64)> {
    let before = rss_kib();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = Arc::clone(&running);
        std::thread::spawn(move || {
            let mut peak = 0;
            while running.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(1));
            }
            peak.max(rss_kib())
        })
    };
    let started = Instant::now();
    let result = runner.run(program, workers, workers, &Value::Null, Dirs::default()).await;
    let seconds = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let peak = sampler.join().map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?;
    result?;
    Ok((seconds, peak.saturating_sub(before) as f64 / 1024.0))
}

/// Seconds of `f`, run once.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let started = Instant::now();
    let value = f()?;
    Ok((started.elapsed().as_secs_f64(), value))
}

pub async fn run(
    runner: &Runner,
    sizes: &Sizes,
    repeats: usize,
    dir: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<Section> {
    bar.set_message("building the Python guests");
    let (build_all, python_dir) = timed(|| Ok(guests::python_guest_path("hello").parent().context("dir")?.to_owned()))?;
    bar.inc(1);
    let scratch = tempfile::tempdir_in(dir).context("a scratch directory")?;
    let mut compile = Vec::new();
    for (language, wasm) in [("Rust", guests::guest_path("hello")), ("Python", python_dir.join("hello.wasm"))] {
        let bytes = std::fs::read(&wasm)?;
        let cache = scratch.path().join(format!("cache-{language}"));
        bar.set_message(format!("compiling {language} hello"));
        let (cold, _) = timed(|| Ok(runner.runtime().load(&bytes, None)?))?;
        let (into_cache, _) = timed(|| Ok(runner.runtime().load(&bytes, Some(&cache))?))?;
        let (from_cache, _) = timed(|| Ok(runner.runtime().load(&bytes, Some(&cache))?))?;
        bar.inc(3);
        compile.push(json!({"language": language, "component_bytes": bytes.len(), "compile_seconds": cold,
            "into_cache_seconds": into_cache, "from_cache_seconds": from_cache}));
    }
    let programs = [("Rust", runner.load("hello")?), ("Python", runner.load_path(&python_dir.join("hello.wasm"))?)];
    let mut packs = Vec::new();
    for &workers in &sizes.packs {
        for (language, program) in &programs {
            let (mut wall, mut rss) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                bar.set_message(format!("{language} hello, {workers} workers"));
                let (seconds, mib) = pack(runner, program, workers).await?;
                wall.push(seconds);
                rss.push(mib);
                bar.inc(1);
            }
            let spread = |v| Spread::of(v).context("repeats");
            packs.push(json!({"language": language, "workers": workers, "flare_seconds": spread(wall)?,
                "rss_rise_mib": spread(rss)?}));
        }
    }
    let kmeans = kmeans(runner, &python_dir, sizes, repeats, bar).await?;
    section(build_all, &compile, &packs, &kmeans, sizes, repeats)
}

/// The k-means twins on the same generated points: flare time and the time
/// in the Lloyd steps' local part (`seconds.assign`, summed over workers).
async fn kmeans(
    runner: &Runner,
    python_dir: &Path,
    sizes: &Sizes,
    repeats: usize,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Value>> {
    let input = json!({"generate": {"points": sizes.kmeans_points, "dimensions": 4, "clusters": 8, "seed": 3},
        "k": 8, "tolerance": 0.0, "max_iterations": KMEANS_STEPS});
    let programs = [("Rust", runner.load("kmeans")?), ("Python", runner.load_path(&python_dir.join("kmeans.wasm"))?)];
    let n = sizes.kmeans_workers;
    let (mut rows, mut iterations) = (Vec::new(), Vec::new());
    for (language, program) in &programs {
        let (mut flare, mut assign) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            bar.set_message(format!("{language} k-means"));
            let result = runner.run(program, n, n, &input, Dirs::default()).await?;
            let outputs = outputs(&result)?;
            iterations.push(outputs[0]["iterations"].clone());
            flare.push(span_seconds(&result));
            assign.push(outputs.iter().filter_map(|o| o["seconds"]["assign"].as_f64()).sum());
            bar.inc(1);
        }
        let spread = |v| Spread::of(v).context("repeats");
        rows.push(json!({"language": language, "flare_seconds": spread(flare)?, "assign_seconds": spread(assign)?,
            "iterations": iterations.last()}));
    }
    // Both twins stop at the same step: they compute the same thing.
    ensure!(iterations.iter().all(|i| *i == iterations[0]), "the k-means twins ran different steps: {iterations:?}");
    Ok(rows)
}

fn median(value: &Value) -> f64 {
    value["median"].as_f64().unwrap_or(f64::NAN)
}

fn show(value: &Value, digits: usize) -> String {
    let number = |key: &str| value[key].as_f64().unwrap_or(f64::NAN);
    format!("{:.digits$} ({:.digits$}–{:.digits$})", number("median"), number("min"), number("max"))
}

fn section(
    build_all: f64,
    compile: &[Value],
    packs: &[Value],
    kmeans: &[Value],
    sizes: &Sizes,
    repeats: usize,
) -> anyhow::Result<Section> {
    let compile_rows: Vec<Vec<String>> = compile
        .iter()
        .map(|c| {
            let s = |key: &str| format!("{:.3}", c[key].as_f64().unwrap_or(f64::NAN));
            let mib = c["component_bytes"].as_f64().unwrap_or(0.0) / f64::from(1u32 << 20);
            vec![
                c["language"].as_str().unwrap_or("?").to_owned(),
                format!("{mib:.2}"),
                s("compile_seconds"),
                s("into_cache_seconds"),
                s("from_cache_seconds"),
            ]
        })
        .collect();
    let one = |language: &str, key: &str| {
        let first = packs.iter().find(|p| p["language"] == language && p["workers"] == sizes.packs[0]);
        first.map_or(f64::NAN, |p| median(&p[key]))
    };
    let pack_rows: Vec<Vec<String>> = packs
        .iter()
        .map(|p| {
            let language = p["language"].as_str().unwrap_or("?");
            let workers = p["workers"].as_u64().unwrap_or(1) as f64;
            let base = sizes.packs[0] as f64;
            let per = |key: &str, scale: f64| {
                if workers > base {
                    format!("{:.2}", (median(&p[key]) - one(language, key)) / (workers - base) * scale)
                } else {
                    "—".to_owned()
                }
            };
            vec![
                language.to_owned(),
                p["workers"].to_string(),
                show(&p["flare_seconds"], 3),
                show(&p["rss_rise_mib"], 1),
                per("flare_seconds", 1e3),
                per("rss_rise_mib", 1.0),
            ]
        })
        .collect();
    let rust_assign =
        kmeans.iter().find(|k| k["language"] == "Rust").map_or(f64::NAN, |k| median(&k["assign_seconds"]));
    let kmeans_rows: Vec<Vec<String>> = kmeans
        .iter()
        .map(|k| {
            vec![
                k["language"].as_str().unwrap_or("?").to_owned(),
                show(&k["flare_seconds"], 3),
                show(&k["assign_seconds"], 3),
                format!("{:.1}×", median(&k["assign_seconds"]) / rust_assign),
            ]
        })
        .collect();
    let text = format!(
        "The Python twins of `hello` and `kmeans` (`examples/python`, built with `burst-py build`, which \
         bundles CPython through componentize-py) beside the Rust originals. Building the three Python \
         guests of the tests (pip install of the SDK, then three `burst-py build` side by side) took {build_all:.1} s. \
         *Compile* is the pack host compiling the component with Cranelift; *into cache* compiles and writes \
         the compiled artifact, *from cache* loads it back, as `burst run`, `burst serve` and the hosts do on \
         every later load. A pack of N `hello` workers runs in this process: the flare's wall time (instantiating \
         every worker, the ring and the all-reduce) and how far the process's resident set rose during it \
         (VmRSS sampled every millisecond, every worker alive until the all-reduce); per-worker figures are the differences from N = {} divided by \
         the extra workers. k-means: {} workers in one pack, {} generated points of 4 dimensions, k = 8, \
         at most {KMEANS_STEPS} Lloyd steps (both twins take the same number); *assign* is the Lloyd steps' local part summed over the workers (the \
         all-reduces are host-native in both).",
        sizes.packs[0], sizes.kmeans_workers, sizes.kmeans_points
    );
    Ok(Section {
        title: "7. Python work functions: build, compile, memory per worker, and speed against Rust".into(),
        text,
        settings: json!({"packs": sizes.packs, "kmeans_workers": sizes.kmeans_workers,
            "kmeans_points": sizes.kmeans_points, "kmeans_steps": KMEANS_STEPS, "repeats": repeats}),
        tables: vec![
            table(&["guest", "MiB", "compile (s)", "into cache (s)", "from cache (s)"], &compile_rows),
            table(
                &["guest", "N", "flare (s)", "RSS rise (MiB)", "ms per extra worker", "MiB per extra worker"],
                &pack_rows,
            ),
            table(&["k-means", "flare (s)", "assign (s)", "assign / Rust"], &kmeans_rows),
        ],
        plots: Vec::new(),
        data: json!({"build_all_seconds": build_all, "compile": compile, "packs": packs, "kmeans": kmeans}),
    })
}
