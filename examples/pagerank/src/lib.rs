//! `pagerank`: PageRank of a directed graph by power iteration, as one flare.
//!
//! Input (defaults in brackets):
//! * `"graph": "/data/FILE"`: a SNAP edge list (`u v` a line, `#` comments);
//!   nodes are `0..=max id`, duplicate edges count once; or
//! * `"generate": {"nodes", "edges_per_node", "seed"}`: the power-law graph
//!   of `generate.rs`, the same whatever the burst size;
//! * `"damping"` [0.85], `"tolerance"` [1e-9] on the L1 change of the rank
//!   vector, `"max_iterations"` [100], `"return_ranks"` [false: the top 20].
//!
//! Each worker reads only its byte range of the file (`Split`). The workers
//! all-gather their line counts, first bad line and largest id: a bad line
//! fails every worker with the same message, numbered in the file, and the
//! node count is agreed. Worker `j` owns the sources
//! [`graph::owned`]`(j)`; an all-to-all sends each edge to its source's
//! owner, which removes duplicates, so they go globally. Every iteration,
//! each worker sums its sources' contributions into a vector of one entry
//! per node plus the dangling mass; a host-native (pack-aware) reduce adds
//! them at worker 0, which makes the next ranks and broadcasts them with
//! the L1 change, so all stop at the same iteration.
//!
//! Every worker returns `worker`, `bytes_read`, `edges_read` (lines parsed,
//! or edges generated), `edges_owned` (distinct, after the shuffle) and
//! `seconds` (`read`: reading and agreeing, or generating; `shuffle`;
//! `iterate`). Worker 0 adds `nodes`, `edges`, `dangling`, `iterations`,
//! `converged`, `l1_change` and `ranks` (in node order) or `top` (the 20
//! highest `[node, rank]`, ties by lower id).
//!
//! `{"kernel": {"generate": …, "iterations": I}}` runs only the power
//! iterations, on one worker (`kernel.rs`).

mod generate;
mod graph;
pub mod kernel;
mod rank;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burst_guest_sdk::split::{SplitLines, first_bad_line};
use burst_guest_sdk::{Context, Error, ReduceOp, export_work};
use serde::{Deserialize, Serialize};

use crate::graph::Adjacency;

const DEFAULT_DAMPING: f64 = 0.85;
const DEFAULT_TOLERANCE: f64 = 1e-9;
const DEFAULT_MAX_ITERATIONS: u32 = 100;
/// Most iterations a flare may ask for.
const MAX_ITERATIONS: u32 = 100_000;
/// Pairs in `top`.
const TOP_COUNT: usize = 20;

/// What a worker is asked, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    graph: Option<PathBuf>,
    generate: Option<generate::Spec>,
    #[serde(default = "default_damping")]
    damping: f64,
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    #[serde(default = "default_max_iterations")]
    max_iterations: u32,
    #[serde(default)]
    return_ranks: bool,
}

fn default_damping() -> f64 {
    DEFAULT_DAMPING
}

fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}

fn default_max_iterations() -> u32 {
    DEFAULT_MAX_ITERATIONS
}

/// Where the graph comes from.
enum Source {
    File(PathBuf),
    Generate(generate::Spec),
}

impl Input {
    /// The graph's source, once every field is checked.
    fn source(&mut self) -> Result<Source, String> {
        if !(0.0..=1.0).contains(&self.damping) {
            return Err(format!("damping must be in 0..=1, got {}", self.damping));
        }
        if !(self.tolerance >= 0.0 && self.tolerance.is_finite()) {
            return Err(format!("tolerance must be a finite number ≥ 0, got {}", self.tolerance));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.max_iterations) {
            return Err(format!("max_iterations must be in 1..={MAX_ITERATIONS}, got {}", self.max_iterations));
        }
        match (self.graph.take(), self.generate.take()) {
            (Some(_), Some(_)) => Err("give either \"graph\" or \"generate\", not both".into()),
            (None, None) => Err("give \"graph\" (an edge list under /data) or \"generate\"".into()),
            (Some(path), None) => Ok(Source::File(path)),
            (None, Some(spec)) => spec.validate().map(|()| Source::Generate(spec)),
        }
    }
}

/// Seconds of each phase.
#[derive(Serialize, Default)]
struct Seconds {
    read: f64,
    shuffle: f64,
    iterate: f64,
}

/// What every worker returns; worker 0 adds the [`Summary`].
#[derive(Serialize)]
struct Output {
    worker: u32,
    bytes_read: u64,
    edges_read: u64,
    edges_owned: u64,
    seconds: Seconds,
    #[serde(flatten)]
    summary: Option<Summary>,
}

/// The result, from worker 0.
#[derive(Serialize)]
struct Summary {
    nodes: u32,
    edges: u64,
    dangling: u64,
    iterations: u32,
    converged: bool,
    l1_change: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ranks: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<Vec<(u32, f64)>>,
}

/// This worker's share of the graph.
struct Loaded {
    nodes: u32,
    adjacency: Adjacency,
    bytes_read: u64,
    edges_read: u64,
}

/// Seconds since `since`, and restarts it.
fn lap(since: &mut Instant) -> f64 {
    let now = Instant::now();
    let seconds = now.duration_since(*since).as_secs_f64();
    *since = now;
    seconds
}

/// Reads this worker's split of the edge list at `path`, agrees on the
/// node count, and shuffles the edges to their sources' owners.
fn load_file(path: &Path, ctx: &Context, seconds: &mut Seconds) -> Result<Loaded, Error> {
    let (id, n) = (ctx.worker_id(), ctx.burst_size());
    let mut clock = Instant::now();
    let split = graph::read_split(path, id, n)
        .map_err(|e| Error::work(format!("could not read the graph {}: {e}", path.display())))?;
    let shared: Vec<(SplitLines, u64)> = ctx.all_gather(&(split.lines, split.nodes))?;
    let (lines, nodes): (Vec<SplitLines>, Vec<u64>) = shared.into_iter().unzip();
    if let Some((line, message)) = first_bad_line(&lines) {
        return Err(Error::work(format!("{} line {line}: {message}", path.display())));
    }
    // Parsing keeps every id below MAX_NODES, so the count fits.
    let nodes = nodes.into_iter().max().unwrap_or(0) as u32;
    if nodes == 0 {
        return Err(Error::work(format!("the graph {} has no edges", path.display())));
    }
    seconds.read = lap(&mut clock);
    let edges_read = split.edges.len() as u64;
    let parts = graph::route(&split.edges, n, nodes);
    drop(split.edges);
    let received = ctx.all_to_all_bytes(&parts)?;
    drop(parts);
    let mut edges = Vec::new();
    for part in &received {
        graph::decode_edges(part, &mut edges).map_err(Error::work)?;
    }
    drop(received);
    let adjacency = Adjacency::new(graph::owned(id, n, nodes), edges).map_err(Error::work)?;
    seconds.shuffle = lap(&mut clock);
    Ok(Loaded { nodes, adjacency, bytes_read: split.bytes_read, edges_read })
}

/// Generates the out-edges of this worker's sources: they are already
/// where they belong, so the shuffle only removes duplicates.
fn load_generated(spec: &generate::Spec, ctx: &Context, seconds: &mut Seconds) -> Result<Loaded, Error> {
    let (id, n) = (ctx.worker_id(), ctx.burst_size());
    let mut clock = Instant::now();
    // `validate` kept `nodes` within MAX_NODES.
    let nodes = spec.nodes as u32;
    let edges = spec.edges(id, n);
    let edges_read = edges.len() as u64;
    seconds.read = lap(&mut clock);
    let adjacency = Adjacency::new(graph::owned(id, n, nodes), edges).map_err(Error::work)?;
    seconds.shuffle = lap(&mut clock);
    Ok(Loaded { nodes, adjacency, bytes_read: 0, edges_read })
}

/// The ranks at the end, with the iterations run and the last L1 change.
fn iterate(input: &Input, loaded: &Loaded, ctx: &Context) -> Result<(Vec<f64>, u32, f64), Error> {
    let nodes = loaded.nodes as usize;
    let mut ranks = vec![1.0 / nodes as f64; nodes];
    let (mut iterations, mut l1) = (0, f64::INFINITY);
    while iterations < input.max_iterations && l1 >= input.tolerance {
        let sums = loaded.adjacency.contributions(&ranks);
        let total = ctx.reduce(0, &sums, ReduceOp::Sum)?;
        drop(sums);
        let next = total.map(|total| {
            let (next, l1) = rank::update(&total, &ranks, input.damping);
            rank::encode(&next, l1)
        });
        (ranks, l1) = rank::decode(&ctx.broadcast_bytes(0, next.as_deref())?, nodes).map_err(Error::work)?;
        iterations += 1;
    }
    Ok((ranks, iterations, l1))
}

fn work(mut input: Input, ctx: &Context) -> Result<Output, Error> {
    let source = input.source().map_err(Error::work)?;
    let mut seconds = Seconds::default();
    let loaded = match &source {
        Source::File(path) => load_file(path, ctx, &mut seconds)?,
        Source::Generate(spec) => load_generated(spec, ctx, &mut seconds)?,
    };
    let counts = ctx.reduce(0, &[loaded.adjacency.edges(), loaded.adjacency.dangling()], ReduceOp::Sum)?;
    let mut clock = Instant::now();
    let (ranks, iterations, l1_change) = iterate(&input, &loaded, ctx)?;
    seconds.iterate = lap(&mut clock);
    let summary = counts.map(|counts| {
        let (ranks, top) =
            if input.return_ranks { (Some(ranks), None) } else { (None, Some(rank::top(&ranks, TOP_COUNT))) };
        Summary {
            nodes: loaded.nodes,
            edges: counts[0],
            dangling: counts[1],
            iterations,
            converged: l1_change < input.tolerance,
            l1_change,
            ranks,
            top,
        }
    });
    Ok(Output {
        worker: ctx.worker_id(),
        bytes_read: loaded.bytes_read,
        edges_read: loaded.edges_read,
        edges_owned: loaded.adjacency.edges(),
        seconds,
        summary,
    })
}

export_work!(work, kernel = kernel::run);
