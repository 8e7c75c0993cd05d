//! `burst-bench`: the paper's evaluation on this machine, in one command,
//! and what WebAssembly costs the workloads.
//!
//! ```sh
//! cargo run --release -p burst-bench -- --quick --out target/evaluation
//! ```
//!
//! It builds what it measures (the guests for `wasm32-wasip2`, and the
//! `burst` binary for the start-up experiment, which goes through a real
//! `burst serve`), runs each experiment with a progress bar, repeats every
//! point (median and min–max), and writes one JSON file per experiment and
//! a `report.md` embedding SVG plots, stamped with the machine, the date,
//! the commit and the settings. `--quick` fits this 2-core machine in a
//! few minutes; the full mode has the same shape at larger sizes;
//! `--smoke` runs every experiment at its smallest, once, so that CI can
//! check that none has broken (its figures mean nothing).

mod collectives;
mod flares;
mod overhead;
mod pagerank;
mod plot;
mod python;
mod report;
mod startup;
mod stats;
mod terasort;
mod tuning;

#[path = "../../tests/guests.rs"]
#[allow(dead_code, reason = "shared with the tests, which use all of it")]
mod guests;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, ensure};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::flares::{Backend, Runner};
use crate::report::{Machine, Report};

/// The allocator `burst` runs with (`controller/src/main.rs`): the
/// in-process experiments measure the host's buffers as the binary
/// allocates them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which experiments to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Experiment {
    /// Worker start latency through `burst serve`, against the FaaS way.
    Startup,
    /// Every collective against granularity, with its remote traffic.
    Collectives,
    /// PageRank against granularity: remote traffic and time per iteration.
    Pagerank,
    /// TeraSort in one flare against the two-stage baseline.
    Terasort,
    /// Hyperparameter search and k-means against N and G.
    Tuning,
    /// Each workload's compute kernel in Wasm against the same source built natively.
    Overhead,
    /// Python work functions against their Rust twins: build, compile, memory, speed.
    Python,
}

/// The evaluation's command line.
#[derive(Parser)]
#[command(version, about = "Evaluate burst on this machine: start-up, collectives and workloads against granularity")]
struct Args {
    /// This machine in a few minutes (smaller sizes, fewer repeats).
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// The smallest sizes, once each: seconds per experiment, to check
    /// that every experiment still runs (CI); its figures mean nothing.
    #[arg(long)]
    smoke: bool,
    /// The `burst` binary the start-up experiment serves with (default:
    /// build this checkout's release binary).
    #[arg(long)]
    burst: Option<PathBuf>,
    /// How packs talk in the in-process experiments.
    #[arg(long, value_enum, default_value_t = Backend::Memory)]
    backend: Backend,
    /// Where the report, the plots and the JSON files go.
    #[arg(long, default_value = "target/evaluation")]
    out: PathBuf,
    /// Run only these experiments (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Experiment>,
}

/// Sizes of one mode.
struct Plan {
    repeats: usize,
    /// Burst sizes of the start-up experiment, each with its granularities.
    startup: Vec<(u32, Vec<u32>)>,
    /// Burst sizes of the collectives experiment.
    collective_sizes: Vec<u32>,
    /// Bytes each worker contributes to a collective.
    collective_bytes: u64,
    pagerank: pagerank::Sizes,
    terasort: terasort::Sizes,
    tuning: tuning::Sizes,
    overhead: overhead::Sizes,
    python: python::Sizes,
}

impl Plan {
    fn of(mode: Mode) -> Self {
        match mode {
            Mode::Smoke => Self {
                repeats: 1,
                startup: vec![(8, vec![1, 8])],
                collective_sizes: vec![4],
                collective_bytes: 4 << 10,
                pagerank: pagerank::Sizes { workers: 4, nodes: 1_000, edges_per_node: 4.0 },
                terasort: terasort::Sizes { workers: 4, records_per_worker: 1_000, granularities: vec![1, 4] },
                tuning: tuning::Sizes {
                    workers: vec![2],
                    search_rows: 200,
                    search_features: 4,
                    search_alphas: 4,
                    kmeans_points: 1_000,
                    kmeans_dimensions: 2,
                    kmeans_clusters: 3,
                },
                overhead: overhead::Sizes {
                    pagerank_nodes: 1_000,
                    terasort_records: 2_000,
                    search_rows: 200,
                    kmeans_points: 1_000,
                },
                python: python::Sizes { packs: vec![1, 4], kmeans_workers: 2, kmeans_points: 500 },
            },
            Mode::Quick => Self {
                repeats: 3,
                startup: vec![(48, vec![1, 6, 48]), (960, vec![10, 48, 960])],
                collective_sizes: vec![8, 16],
                collective_bytes: 256 << 10,
                pagerank: pagerank::Sizes { workers: 16, nodes: 100_000, edges_per_node: 8.0 },
                terasort: terasort::Sizes { workers: 8, records_per_worker: 100_000, granularities: vec![1, 2, 8] },
                tuning: tuning::Sizes {
                    workers: vec![4, 8],
                    search_rows: 20_000,
                    search_features: 32,
                    search_alphas: 48,
                    kmeans_points: 200_000,
                    kmeans_dimensions: 4,
                    kmeans_clusters: 8,
                },
                overhead: overhead::Sizes {
                    pagerank_nodes: 200_000,
                    terasort_records: 500_000,
                    search_rows: 50_000,
                    kmeans_points: 500_000,
                },
                python: python::Sizes { packs: vec![1, 100], kmeans_workers: 4, kmeans_points: 5_000 },
            },
            // Sized so that a full run fits about half an hour on a 2-core
            // machine: collectives at N = 64 over every granularity dominate,
            // so they move the quick mode's 256 KiB per worker, not more.
            Mode::Full => Self {
                repeats: 3,
                startup: vec![(48, vec![1, 6, 48]), (960, vec![10, 48, 96, 960]), (10_000, vec![100, 1000, 10_000])],
                collective_sizes: vec![8, 16, 32, 64],
                collective_bytes: 256 << 10,
                pagerank: pagerank::Sizes { workers: 64, nodes: 200_000, edges_per_node: 8.0 },
                terasort: terasort::Sizes { workers: 16, records_per_worker: 200_000, granularities: vec![1, 4, 16] },
                tuning: tuning::Sizes {
                    workers: vec![4, 8, 16],
                    search_rows: 50_000,
                    search_features: 48,
                    search_alphas: 96,
                    kmeans_points: 1_000_000,
                    kmeans_dimensions: 4,
                    kmeans_clusters: 8,
                },
                overhead: overhead::Sizes {
                    pagerank_nodes: 1_000_000,
                    terasort_records: 1_000_000,
                    search_rows: 200_000,
                    kmeans_points: 2_000_000,
                },
                python: python::Sizes { packs: vec![1, 100, 1000], kmeans_workers: 4, kmeans_points: 20_000 },
            },
        }
    }
}

/// How big the evaluation is.
#[derive(Clone, Copy)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
        .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_prefix(what.to_owned());
    bar
}

/// Builds the release `burst` binary of this checkout; answers its path.
fn build_burst(root: &std::path::Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "burst-controller"])
        .status()
        .context("running cargo to build burst")?;
    ensure!(status.success(), "building burst failed");
    Ok(root.join("target/release/burst"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wanted = |e: Experiment| args.only.is_empty() || args.only.contains(&e);
    let mode = match (args.smoke, args.quick) {
        (true, _) => Mode::Smoke,
        (false, true) => Mode::Quick,
        (false, false) => Mode::Full,
    };
    let plan = Plan::of(mode);
    let root = guests::workspace_root();
    let mut report = Report::new(&args.out, Machine::now(&root), mode.name())?;
    eprintln!("building the guests ...");
    let guests = guests::guest_path("hello").parent().context("guest directory")?.to_owned();
    let max_workers = plan.collective_sizes.iter().chain(&plan.tuning.workers).copied().max().unwrap_or(1);
    let max_workers = max_workers.max(plan.pagerank.workers).max(plan.terasort.workers);
    let max_workers = plan.python.packs.iter().copied().fold(max_workers, u32::max);
    let runner = Runner::new(max_workers, args.backend, guests)?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if wanted(Experiment::Startup) {
        let burst = match &args.burst {
            Some(path) => path.clone(),
            None => {
                eprintln!("building burst ...");
                build_burst(&root)?
            }
        };
        let hello = std::fs::read(guests::guest_path("hello"))?;
        let flares = plan.startup.iter().map(|(_, gs)| (gs.len() + 1) * plan.repeats).sum::<usize>();
        let bar = bar(flares as u64, "start-up");
        let section = tokio.block_on(startup::run(&burst, &hello, &plan.startup, plan.repeats, report.dir(), &bar))?;
        bar.finish_with_message("done");
        report.add("startup", section)?;
    }
    if wanted(Experiment::Collectives) {
        let bar = bar(collectives::flares(&plan.collective_sizes, plan.repeats), "collectives");
        let section = tokio.block_on(collectives::run(
            &runner,
            &plan.collective_sizes,
            plan.collective_bytes,
            plan.repeats,
            report.dir(),
            &bar,
        ))?;
        bar.finish_with_message("done");
        report.add("collectives", section)?;
    }
    if wanted(Experiment::Pagerank) {
        let bar = bar(pagerank::flares(&plan.pagerank, plan.repeats), "pagerank");
        let section = tokio.block_on(pagerank::run(&runner, &plan.pagerank, plan.repeats, report.dir(), &bar))?;
        bar.finish_with_message("done");
        report.add("pagerank", section)?;
    }
    if wanted(Experiment::Terasort) {
        let bar = bar(terasort::flares(&plan.terasort, plan.repeats), "terasort");
        let section = tokio.block_on(terasort::run(&runner, &plan.terasort, plan.repeats, report.dir(), &bar))?;
        bar.finish_with_message("done");
        report.add("terasort", section)?;
    }
    if wanted(Experiment::Tuning) {
        let bar = bar(tuning::flares(&plan.tuning, plan.repeats), "tuning");
        let section = tokio.block_on(tuning::run(&runner, &plan.tuning, plan.repeats, report.dir(), &bar))?;
        bar.finish_with_message("done");
        report.add("tuning", section)?;
    }
    if wanted(Experiment::Overhead) {
        let bar = bar(overhead::runs(plan.repeats), "overhead");
        let section = tokio.block_on(overhead::run(&runner, &plan.overhead, plan.repeats, &bar))?;
        bar.finish_with_message("done");
        report.add("overhead", section)?;
    }
    if wanted(Experiment::Python) {
        let bar = bar(python::runs(&plan.python, plan.repeats), "python");
        let section = tokio.block_on(python::run(&runner, &plan.python, plan.repeats, report.dir(), &bar))?;
        bar.finish_with_message("done");
        report.add("python", section)?;
    }
    let path = report.finish()?;
    println!("wrote {}", path.display());
    Ok(())
}
