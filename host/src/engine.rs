//! The one module that configures wasmtime.
//!
//! burst narrows wasmtime to what a pack needs: components only, async calls
//! (a worker blocked in `recv` is a parked task, not a thread), the pooling
//! allocator sized for thousands of workers per process, and epoch
//! interruption so that CPU-bound guests yield to the executor every tick and
//! can be stopped at a deadline. WASI is linked locked down: no environment,
//! no arguments, no network addresses, no host directory unless a flare
//! grants one read-only; stdout and stderr go to bounded captures. Each store
//! carries a [`WorkerLimiter`] that bounds its memory, tables and instances
//! to the flare's [`Limits`].
//!
//! What decides guest compute speed is kept at wasmtime's defaults:
//! Cranelift with `OptLevel::Speed`, the SIMD proposal enabled, and a
//! 4 GiB address-space reservation plus guard per linear memory
//! (`memory_reservation`, honoured by the pooling allocator), so 32-bit
//! loads and stores need no explicit bounds checks. Epoch interruption is
//! what costs: it adds a counter check per loop header and function entry,
//! and in a byte-at-a-time loop (the microbench's payload check) Cranelift
//! keeps the counter's address and the deadline on the stack, reloading
//! both every iteration. `cargo bench -p burst-controller --bench compute`
//! gives 2.3–2.5× the native time of the same source with it, 1.2–1.4×
//! with epoch interruption turned off (AMD EPYC, 2026-12-07). It stays on:
//! without it a guest that never calls the host can neither be time-sliced
//! nor stopped at its deadline. (The 0.93–0.98× of earlier runs compared
//! against a native side on the system allocator, which mapped and faulted
//! in a fresh buffer every iteration.)
//!
//! Two settings are about the data path. The tick is 100 µs
//! ([`DEFAULT_EPOCH_TICK`]) because a pack runs more workers than cores: a
//! worker woken with its data has to wait its turn behind workers that
//! compute, a tick each, before it can copy the data in, so a collective
//! reaches the pack's last worker a tick per computing worker late (a
//! broadcast of 8 MiB to 16 workers of a pack took 83 ms with 10 ms ticks
//! and 20 ms with 1 ms ticks; 512 KiB to 32 workers 11.5 ms with 1 ms
//! ticks and 5.3 ms with 100 µs ones). The ticker only runs while some
//! worker is running guest code (`ticker`), so a process whose workers all
//! wait in calls pays nothing for it; four workers computing at once spend
//! 2–5 % more CPU than with 1 ms ticks. And the
//! pool of linear memories is advised onto transparent huge pages
//! (`huge_pages`), because every byte a worker receives lands in its own
//! memory, most of it touched for the first time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

mod huge_pages;
mod quota;
mod ticker;

pub use quota::OutputQuota;

use crate::comm::WorkerComm;
use crate::limits::{Exceeded, Limits, MAX_MEMORY_PER_WORKER};
use crate::output::CapturedOutput;
use crate::program::{LoadError, Program};

/// Core instances pooled per worker. A Rust wasip2 component instantiates
/// a handful of core modules (the program and its adapter shims); one built
/// by componentize-py instantiates 14 (CPython and its libraries are
/// dynamically linked modules), all with one memory and at most two tables.
const CORE_INSTANCES_PER_WORKER: u32 = 16;
/// Tables pooled per worker (see [`CORE_INSTANCES_PER_WORKER`]).
const TABLES_PER_WORKER: u32 = 4;

/// Hard cap on the pooled instances of one process; a config asking for
/// more is clamped, so a typo cannot reserve unbounded address space.
pub const MAX_POOLED_WORKERS: u32 = 20_000;

/// Settings of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Workers that may be alive at once in this process (pool size).
    pub max_workers: u32,
    /// Largest linear memory of one worker, in bytes: the address space
    /// the pool reserves per worker, so the most any flare's
    /// [`Limits::memory_bytes`] may ask for in this process.
    pub max_memory_per_worker: u64,
    /// Interval of the epoch tick that time-slices guests.
    pub epoch_tick: Duration,
}

/// How often guests yield to the executor by default (see the module's
/// opening comment for why it is this short).
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_micros(100);

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { max_workers: 10_240, max_memory_per_worker: 1 << 30, epoch_tick: DEFAULT_EPOCH_TICK }
    }
}

/// The per-process wasmtime engine, its linker and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<WorkerState>,
    config: RuntimeConfig,
    ticker: ticker::Ticker,
}

impl Runtime {
    /// Builds the engine and starts its epoch ticker thread.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration (for example, the pool cannot
    /// reserve its address space).
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut config = config;
        config.max_workers = config.max_workers.clamp(1, MAX_POOLED_WORKERS);
        config.max_memory_per_worker = config.max_memory_per_worker.clamp(64 << 10, MAX_MEMORY_PER_WORKER);
        let (workers, memory) = (config.max_workers, config.max_memory_per_worker);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(workers)
            .total_core_instances(workers * CORE_INSTANCES_PER_WORKER)
            .total_memories(workers)
            .total_tables(workers * TABLES_PER_WORKER)
            .total_stacks(workers)
            .max_memory_size(memory as usize);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let before = huge_pages::Reservations::now();
        let engine = Engine::new(&wasm).map_err(anyhow::Error::from).context("configuring the wasmtime engine")?;
        match huge_pages::Reservations::now().advise_new_pool(&before, u64::from(workers) * memory) {
            Some(bytes) => tracing::debug!(bytes, "linear memories on transparent huge pages"),
            None => tracing::debug!("linear memories on small pages"),
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from).context("linking WASI")?;
        quota::add_output_quota(&mut linker).context("linking the output quota")?;
        crate::linker::add_comm(&mut linker).context("linking burst:bcm/comm")?;
        let ticker = ticker::Ticker::start(engine.weak(), config.epoch_tick)?;
        Ok(Self { engine, linker, config, ticker })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// This runtime's settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles (or loads from `cache_dir`) a component and checks that it
    /// targets the `burst:bcm/worker` world.
    ///
    /// # Errors
    /// [`LoadError`] naming what is wrong with the component.
    pub fn load(&self, wasm: &[u8], cache_dir: Option<&Path>) -> Result<Program, LoadError> {
        Program::load(&self.engine, &self.linker, wasm, cache_dir)
    }

    /// A store for one worker, time-sliced by the epoch ticker and bounded
    /// by `limits`, seeing the host directories of `dirs`.
    ///
    /// # Errors
    /// When a directory cannot be opened.
    pub(crate) fn new_store(
        &self,
        comm: Arc<WorkerComm>,
        limits: &Limits,
        dirs: &Dirs,
    ) -> anyhow::Result<(Store<WorkerState>, Output)> {
        let output = Output {
            stdout: CapturedOutput::new(limits.output_bytes as usize),
            stderr: CapturedOutput::new(limits.output_bytes as usize),
        };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output.stdout.clone()).stderr(output.stderr.clone());
        // Sockets are linked for the toolchains that import them, and off:
        // no TCP, no UDP, no name lookup (and no address passes wasi's
        // default check either).
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        if let Some(dir) = &dirs.data {
            wasi.preopened_dir(dir, GUEST_DATA_DIR, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("opening {} for the guest", dir.display()))?;
        }
        if let Some(output) = &dirs.output {
            wasi.preopened_dir(&output.path, GUEST_OUTPUT_DIR, FsPerms::ReadWrite)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("opening {} for the guest", output.path.display()))?;
        }
        let state = WorkerState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            comm,
            limiter: WorkerLimiter(*limits),
            output_quota: dirs.output.as_ref().map(|output| Arc::clone(&output.quota)),
            ticking: self.ticker.running(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // wasmtime caps the bytes one host call may lift out of a guest
        // (128 MiB by default). A message can never be larger than the
        // guest's memory, so that memory is the cap that matters.
        store.set_hostcall_fuel(self.config.max_memory_per_worker as usize);
        store.set_epoch_deadline(1);
        // tokio's own yield puts the worker at the back of the run queue; a
        // plain self-wake would land in the LIFO slot and let a CPU-bound
        // guest run several slices in a row ahead of woken peers.
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))));
        Ok((store, output))
    }
}

/// Where the read-only host directory appears in the guest.
pub const GUEST_DATA_DIR: &str = "/data";

/// Where the writable output directory appears in the guest.
pub const GUEST_OUTPUT_DIR: &str = "/out";

/// The host directories a worker sees; neither: no filesystem at all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dirs {
    /// Seen read-only as [`GUEST_DATA_DIR`].
    pub data: Option<PathBuf>,
    /// Seen writable as [`GUEST_OUTPUT_DIR`].
    pub output: Option<OutputDir>,
}

/// A flare's writable directory and its byte quota.
#[derive(Clone, Debug)]
pub struct OutputDir {
    /// The host directory; it must exist.
    pub path: PathBuf,
    /// Shared by every worker of the flare on this host.
    pub quota: Arc<OutputQuota>,
}

impl OutputDir {
    /// `path`, writable up to `quota_bytes` in all.
    pub fn new(path: impl Into<PathBuf>, quota_bytes: u64) -> Self {
        Self { path: path.into(), quota: OutputQuota::new(quota_bytes) }
    }
}

/// Captured stdout and stderr of one worker.
pub(crate) struct Output {
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

/// Holds a worker to its [`Limits`]. Growing memory or a table past a limit
/// traps the guest with an [`Exceeded`] error (rather than failing the grow)
/// so that the failure is reported as the limit it is.
pub(crate) struct WorkerLimiter(Limits);

impl ResourceLimiter for WorkerLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let limit = self.0.memory_bytes;
        if desired as u64 > limit {
            return Err(Exceeded::Memory { desired: desired as u64, limit }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let limit = self.0.table_elements;
        if desired as u64 > u64::from(limit) {
            return Err(Exceeded::Table { desired: desired as u64, limit }.into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.0.instances as usize
    }

    fn tables(&self) -> usize {
        self.0.tables as usize
    }

    fn memories(&self) -> usize {
        // One memory per core instance at most in what Rust and the
        // component adapters produce.
        self.0.instances as usize
    }
}

/// What a worker's store holds.
pub struct WorkerState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) comm: Arc<WorkerComm>,
    limiter: WorkerLimiter,
    /// What the flare may still write under [`GUEST_OUTPUT_DIR`].
    output_quota: Option<Arc<OutputQuota>>,
    /// Keeps the epoch ticker going while this worker runs guest code.
    pub(crate) ticking: ticker::Running,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
