//! `kmeans`: k-means clustering by Lloyd's algorithm, as one flare.
//!
//! Input (defaults in brackets):
//! * `"points": "/data/FILE.csv"`: a CSV of numbers, one point a row, under
//!   a header line (any names; it fixes the number of columns, ≥ 1); or
//! * `"generate": {"points", "dimensions", "clusters", "seed" [0]}`: the
//!   seeded clusters of `generate.rs`, the same whatever the burst size;
//! * `"k"`: the number of clusters, 1 to [`MAX_K`] and at most the rows;
//! * `"tolerance"` [1e-6]: stop once no centroid moves (Euclidean distance)
//!   more than this; `"max_iterations"` [100]: or after this many steps.
//!
//! The initial centroids are the first `k` rows, which every worker reads
//! (or generates) itself. Each worker holds a contiguous share of the
//! rows: of a file, the lines that start in its byte range (`Split`, so
//! the share is even by bytes, not by rows); generated, rows
//! `[i·R/N, (i+1)·R/N)`. A bad line fails every worker with the same
//! message naming the file and the line (1-based, the header is line 1).
//! Every step, each worker assigns its points to their nearest centroid
//! (ties to the lowest index) and adds them into one vector of `k·(d+1)`
//! per-cluster sums and counts; a host-native `all_reduce` (f64 sum) adds
//! the workers' vectors, and every worker makes the same new centroids
//! from it (an empty cluster keeps its centroid), so all stop together.
//!
//! Every worker returns `worker`, `points` (the rows it held), `bytes_read`
//! and `seconds` (`read`: reading, checking and agreeing, or generating;
//! `assign`: the local part of every step; `reduce`: the all-reduces).
//! Worker 0 adds `total_points`, `dimensions`, `k`, `iterations`,
//! `converged`, `movement` (the largest move in the last step),
//! `centroids` (`k` rows) and `sizes` (points per cluster in the last
//! step's assignment).
//!
//! `{"kernel": {"generate": …, "k": K, "iterations": I}}` runs only the
//! Lloyd steps, on one worker (`kernel.rs`).

mod csv;
mod generate;
pub mod kernel;
mod lloyd;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burst_guest_sdk::split::{SplitLines, first_bad_line};
use burst_guest_sdk::{Context, Error, ReduceOp, export_work};
use serde::{Deserialize, Serialize};

const DEFAULT_TOLERANCE: f64 = 1e-6;
const DEFAULT_MAX_ITERATIONS: u32 = 100;
/// Most iterations a flare may ask for.
const MAX_ITERATIONS: u32 = 100_000;
/// Most clusters: with [`MAX_DIMENSIONS`], the all-reduced vector stays
/// within 32 MiB.
pub const MAX_K: u32 = 4096;
/// Most coordinates of a point.
pub const MAX_DIMENSIONS: usize = 1024;
/// Most numbers a worker holds (256 MiB of `f64`, well inside a worker's
/// memory limit); more points need more workers.
pub const MAX_WORKER_CELLS: usize = 1 << 25;

/// What a worker is asked, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    points: Option<PathBuf>,
    generate: Option<generate::Spec>,
    k: u32,
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    #[serde(default = "default_max_iterations")]
    max_iterations: u32,
}

fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}

fn default_max_iterations() -> u32 {
    DEFAULT_MAX_ITERATIONS
}

/// Where the points come from.
enum Source {
    File(PathBuf),
    Generate(generate::Spec),
}

impl Input {
    /// The points' source, once every field is checked (the row count of
    /// a file is checked when its head is read).
    fn source(&mut self, burst_size: u32) -> Result<Source, String> {
        if !(self.tolerance >= 0.0 && self.tolerance.is_finite()) {
            return Err(format!("tolerance must be a finite number ≥ 0, got {}", self.tolerance));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.max_iterations) {
            return Err(format!("max_iterations must be in 1..={MAX_ITERATIONS}, got {}", self.max_iterations));
        }
        if !(1..=MAX_K).contains(&self.k) {
            return Err(format!("k must be in 1..={MAX_K}, got {}", self.k));
        }
        match (self.points.take(), self.generate.take()) {
            (Some(_), Some(_)) => Err("give either \"points\" or \"generate\", not both".into()),
            (None, None) => Err("give \"points\" (a CSV file under /data) or \"generate\"".into()),
            (Some(path), None) => Ok(Source::File(path)),
            (None, Some(spec)) => {
                spec.validate(burst_size)?;
                if u64::from(self.k) > spec.points {
                    return Err(format!("k = {} but generate.points is {}", self.k, spec.points));
                }
                Ok(Source::Generate(spec))
            }
        }
    }
}

/// Seconds of each phase.
#[derive(Serialize, Default)]
struct Seconds {
    read: f64,
    assign: f64,
    reduce: f64,
}

/// What every worker returns; worker 0 adds the [`Summary`].
#[derive(Serialize)]
struct Output {
    worker: u32,
    points: u64,
    bytes_read: u64,
    seconds: Seconds,
    #[serde(flatten)]
    summary: Option<Summary>,
}

/// The result, from worker 0.
#[derive(Serialize)]
struct Summary {
    total_points: u64,
    dimensions: usize,
    k: u32,
    iterations: u32,
    converged: bool,
    movement: f64,
    centroids: Vec<Vec<f64>>,
    sizes: Vec<u64>,
}

/// This worker's share of the points, and what every worker agrees on.
struct Loaded {
    dimensions: usize,
    /// The first `k` points, row-major.
    initial: Vec<f64>,
    /// This worker's points, row-major.
    points: Vec<f64>,
    total_points: u64,
    bytes_read: u64,
}

/// Reads the head and this worker's split of the CSV at `path`, and agrees
/// on the first bad line and the row count.
fn load_file(path: &Path, k: u32, ctx: &Context) -> Result<Loaded, Error> {
    let head = csv::read_head(path, k as usize).map_err(Error::work)?;
    let split = csv::read_split(path, ctx.worker_id(), ctx.burst_size(), head.columns)
        .map_err(|e| Error::work(format!("could not read the points {}: {e}", path.display())))?;
    let rows = split.rows(head.columns);
    let shared: Vec<(SplitLines, u64)> = ctx.all_gather(&(split.lines, rows))?;
    let (lines, rows): (Vec<SplitLines>, Vec<u64>) = shared.into_iter().unzip();
    if let Some((line, message)) = first_bad_line(&lines) {
        return Err(Error::work(format!("{} line {line}: {message}", path.display())));
    }
    Ok(Loaded {
        dimensions: head.columns,
        initial: head.rows,
        points: split.points,
        total_points: rows.iter().sum(),
        bytes_read: split.bytes_read,
    })
}

/// Generates the first `k` points and this worker's share.
fn load_generated(spec: &generate::Spec, k: u32, ctx: &Context) -> Loaded {
    Loaded {
        dimensions: spec.dimensions as usize,
        initial: spec.points(0..u64::from(k)),
        points: spec.points(spec.share(ctx.worker_id(), ctx.burst_size())),
        total_points: spec.points,
        bytes_read: 0,
    }
}

/// Seconds since `since`, and restarts it.
fn lap(since: &mut Instant) -> f64 {
    let now = Instant::now();
    let seconds = now.duration_since(*since).as_secs_f64();
    *since = now;
    seconds
}

/// Lloyd steps from the first `k` points until no centroid moves more
/// than the tolerance, or `max_iterations`: the last step, the steps run
/// and whether it converged.
fn iterate(
    input: &Input,
    loaded: Loaded,
    ctx: &Context,
    seconds: &mut Seconds,
) -> Result<(lloyd::Step, u32, bool), Error> {
    let d = loaded.dimensions;
    let mut step = lloyd::Step { centroids: loaded.initial, sizes: Vec::new(), movement: f64::INFINITY };
    let (mut iterations, mut converged) = (0, false);
    while iterations < input.max_iterations && !converged {
        let mut clock = Instant::now();
        let sums = lloyd::accumulate(&loaded.points, &step.centroids, d);
        seconds.assign += lap(&mut clock);
        let totals = ctx.all_reduce(&sums, ReduceOp::Sum)?;
        seconds.reduce += lap(&mut clock);
        step = lloyd::update(&totals, &step.centroids, d);
        iterations += 1;
        converged = step.movement <= input.tolerance;
    }
    Ok((step, iterations, converged))
}

fn work(mut input: Input, ctx: &Context) -> Result<Output, Error> {
    let source = input.source(ctx.burst_size()).map_err(Error::work)?;
    let mut seconds = Seconds::default();
    let mut clock = Instant::now();
    let loaded = match &source {
        Source::File(path) => load_file(path, input.k, ctx)?,
        Source::Generate(spec) => load_generated(spec, input.k, ctx),
    };
    seconds.read = lap(&mut clock);
    let (d, total_points, bytes_read) = (loaded.dimensions, loaded.total_points, loaded.bytes_read);
    let points = (loaded.points.len() / d) as u64;
    let (step, iterations, converged) = iterate(&input, loaded, ctx, &mut seconds)?;
    let summary = (ctx.worker_id() == 0).then(|| Summary {
        total_points,
        dimensions: d,
        k: input.k,
        iterations,
        converged,
        movement: step.movement,
        centroids: step.centroids.chunks_exact(d).map(<[f64]>::to_vec).collect(),
        sizes: step.sizes,
    });
    Ok(Output { worker: ctx.worker_id(), points, bytes_read, seconds, summary })
}

export_work!(work, kernel = kernel::run);
