//! The paper's workloads as real guests (`examples/pagerank`, `terasort`,
//! `gridsearch`, `kmeans`), each checked against an independent
//! computation written in the test, in one process and through Redis, at
//! several burst sizes and granularities.

mod gridsearch;
mod kmeans;
mod pagerank;
mod terasort;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use burst_host::comm::{self, BrokerKind};
use burst_host::limits::DEFAULT_OUTPUT_QUOTA;
use burst_host::{FlareResult, FlareSpec, OutputDir, PackLayout, Program};
use bytes::Bytes;
use serde_json::Value;

use crate::brokers::{leftovers, options, unique_flare_id};
use crate::support::{guest_path, runtime};

/// How long a workload flare may take in the tests.
const DEADLINE: Duration = Duration::from_secs(120);

/// A xorshift64* stream: the tests' own randomness, independent of the
/// generators the guests use.
pub struct Stream(pub u64);

impl Stream {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (near enough for tests).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.next() as u8;
        }
    }
}

/// The workload guest `name`, loaded once per test process.
pub fn workload(name: &'static str) -> &'static Program {
    program_at(guest_path(name))
}

/// The component at `path`, loaded once per test process.
pub fn program_at(path: PathBuf) -> &'static Program {
    static PROGRAMS: OnceLock<std::sync::Mutex<Vec<(PathBuf, &'static Program)>>> = OnceLock::new();
    let mut loaded = PROGRAMS.get_or_init(Default::default).lock().expect("not poisoned");
    if let Some((_, program)) = loaded.iter().find(|(p, _)| *p == path) {
        return program;
    }
    let wasm = std::fs::read(&path).expect("the guest was built");
    let program: &'static Program = Box::leak(Box::new(runtime().load(&wasm, None).expect("the guest loads")));
    loaded.push((path, program));
    program
}

/// Where a workload flare runs and what it may see.
pub struct Run<'a> {
    pub workers: u32,
    pub granularity: u32,
    /// `None`: the packs talk in memory; otherwise through this broker.
    pub broker: Option<BrokerKind>,
    /// Seen by the workers as `/data`.
    pub data: Option<&'a Path>,
    /// Seen by the workers as `/out`.
    pub output: Option<&'a Path>,
    /// When the flare fails with a deadline error.
    pub deadline: Duration,
}

impl Run<'_> {
    /// A flare of `workers` in packs of `granularity`, in memory, no files.
    pub fn new(workers: u32, granularity: u32) -> Self {
        Self { workers, granularity, broker: None, data: None, output: None, deadline: DEADLINE }
    }

    /// Runs `program` with the same `input` on every worker; through a
    /// broker, checks that the flare left nothing in it.
    pub async fn flare(&self, program: &Program, input: &Value) -> FlareResult {
        let layout = Arc::new(PackLayout::homogeneous(self.workers, self.granularity).expect("valid layout"));
        let input = Bytes::from(serde_json::to_vec(input).expect("JSON"));
        let flare_id = unique_flare_id("workload");
        let mut spec = FlareSpec::new(flare_id, Arc::clone(&layout), vec![input; self.workers as usize], self.deadline);
        spec.read_only_dir = self.data.map(Path::to_owned);
        spec.output = self.output.map(|dir| OutputDir::new(dir, DEFAULT_OUTPUT_QUOTA));
        let Some(kind) = self.broker else {
            return burst_host::run_flare(runtime(), program, &spec).await.expect("the spec is valid");
        };
        let options = options(kind, kind.default_url(), 1 << 20, self.deadline);
        let mut backends = Vec::new();
        for pack in 0..layout.pack_count() {
            backends.push(comm::connect(&options, &spec.flare_id, pack, layout.pack_count()).await.expect("connects"));
        }
        let result = burst_host::run_flare_over(runtime(), program, &spec, backends).await.expect("the spec is valid");
        let left = leftovers(kind, &spec.flare_id, layout.pack_count()).await;
        assert_eq!(left, Vec::<String>::new(), "{kind:?}: the flare left state behind");
        result
    }
}
