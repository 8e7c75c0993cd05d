//! Running the workers of a flare.
//!
//! [`run_pack`] runs one pack: one store and one tokio task per worker, plus
//! the pump that feeds the pack's mailbox from its backend. [`run_flare`]
//! runs every pack of a flare in this process over a [`MemoryBroker`].
//!
//! The workers of a pack are instantiated first and enter `work` together,
//! once all of them are ready: a flare's workers run simultaneously or not
//! at all.
//!
//! Failure semantics: the first worker that traps, returns an error or
//! outlives the deadline fails the flare; every blocked call of every pack
//! then returns an error at once, and a worker still running
//! [`CANCEL_GRACE`] later is stopped (epoch ticks make even a CPU-bound
//! guest stoppable). Every task the flare started has ended when these
//! functions return.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::join_all;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::comm::{Backend, BackendError, MemoryBroker, PackComm, WorkerComm};
use crate::engine::{Dirs, OutputDir};
use crate::limits::Exceeded;
use crate::result::now_us;
use crate::{
    ByteCounts, Failure, FailureKind, FlareResult, LimitError, Limits, PackLayout, PackTraffic, Program, Runtime,
    WorkerResult,
};

/// How long a worker may keep running after its flare failed before it is
/// stopped; long enough to return an error it was handed, short enough that
/// a failed flare ends promptly.
pub const CANCEL_GRACE: Duration = Duration::from_millis(250);

/// How long after the deadline a worker that is waiting in a comm call is
/// failed, so that a peer still computing at the deadline — the likely
/// cause of the wait — is the worker the failure names.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// Bytes of a guest's stderr quoted in a trap's message (the panic text).
const TRAP_STDERR_QUOTE: usize = 512;

/// What to run.
#[derive(Clone, Debug)]
pub struct FlareSpec {
    /// Names the flare in results, logs and backend keys.
    pub flare_id: String,
    /// The packs.
    pub layout: Arc<PackLayout>,
    /// One input per worker, in worker-id order.
    pub inputs: Vec<Bytes>,
    /// Time from the start until the flare fails with `deadline`.
    pub deadline: Duration,
    /// What each worker may use.
    pub limits: Limits,
    /// A host directory every worker may read (not write), seen by the
    /// guest as `/data`; no host filesystem at all when `None`.
    pub read_only_dir: Option<PathBuf>,
    /// A host directory every worker may write, up to its quota, seen by
    /// the guest as `/out`: the flare's results on disk. `None`: nothing is
    /// writable.
    pub output: Option<OutputDir>,
    /// Cancelling it fails the flare with `cancelled`, as any failure does:
    /// every worker stops (one still computing within [`CANCEL_GRACE`]),
    /// the other packs are told, and the packs clean up.
    pub cancel: CancellationToken,
}

impl FlareSpec {
    /// A flare with the default [`Limits`] and no filesystem.
    pub fn new(flare_id: impl Into<String>, layout: Arc<PackLayout>, inputs: Vec<Bytes>, deadline: Duration) -> Self {
        Self {
            flare_id: flare_id.into(),
            layout,
            inputs,
            deadline,
            limits: Limits::default(),
            read_only_dir: None,
            output: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// Why a [`FlareSpec`] cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The number of inputs is not the burst size.
    #[error("{got} inputs for a burst of {burst_size} workers")]
    InputCount {
        /// The burst size.
        burst_size: u32,
        /// Inputs given.
        got: usize,
    },
    /// The pack does not exist in the layout.
    #[error("pack {pack_id} does not exist (the flare has {pack_count} packs)")]
    NoSuchPack {
        /// The pack asked for.
        pack_id: u32,
        /// Packs in the layout.
        pack_count: u32,
    },
    /// A limit is out of range, or above what this process's runtime was
    /// configured for.
    #[error("{0}")]
    Limit(#[from] LimitError),
    /// The read-only directory cannot be opened.
    #[error("cannot grant directory {path}: {reason}")]
    Directory {
        /// The directory asked for.
        path: PathBuf,
        /// Why it cannot be granted.
        reason: String,
    },
    /// The backend could not be opened.
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
}

/// Runs every pack of a flare in this process, connected by an in-process
/// broker that counts what crosses packs as remote.
///
/// # Errors
/// [`SpecError`] when the inputs do not match the layout. Worker failures
/// are reported in the [`FlareResult`], not as errors.
pub async fn run_flare(runtime: &Arc<Runtime>, program: &Program, spec: &FlareSpec) -> Result<FlareResult, SpecError> {
    let broker = MemoryBroker::new(spec.layout.pack_count());
    let backends = (0..spec.layout.pack_count()).map(|p| broker.endpoint(p)).collect::<Result<_, _>>()?;
    run_flare_over(runtime, program, spec, backends).await
}

/// Runs every pack of a flare in this process, pack `p` talking through
/// `backends[p]` (for example one Redis endpoint per pack).
///
/// # Errors
/// [`SpecError`] when the inputs do not match the layout or there is not
/// one backend per pack.
pub async fn run_flare_over(
    runtime: &Arc<Runtime>,
    program: &Program,
    spec: &FlareSpec,
    backends: Vec<Arc<dyn Backend>>,
) -> Result<FlareResult, SpecError> {
    check_spec(runtime, spec)?;
    let pack_count = spec.layout.pack_count();
    if backends.len() != pack_count as usize {
        return Err(SpecError::NoSuchPack { pack_id: backends.len() as u32, pack_count });
    }
    let deadline = Instant::now() + spec.deadline;
    let running: Vec<RunningPack> = (0..pack_count)
        .zip(backends)
        .map(|(pack_id, backend)| start_pack(runtime, program, spec, pack_id, backend, deadline))
        .collect();
    let mut result = FlareResult {
        flare_id: spec.flare_id.clone(),
        workers: Vec::new(),
        bytes: ByteCounts::default(),
        traffic: Vec::new(),
        failure: None,
    };
    // Together: a pack finishes only once it has heard from every other.
    let finished = join_all(running.into_iter().map(RunningPack::finish)).await;
    let mut packs = Vec::with_capacity(finished.len());
    for pack in finished {
        result.workers.extend(pack.workers);
        result.bytes += pack.bytes;
        result.traffic.extend(pack.traffic);
        result.failure = earliest(result.failure, pack.failure);
        packs.push(pack.pack);
    }
    // Closed only now: a pack that failed may have told packs that had
    // already finished, and what it told them must go too.
    join_all(packs.iter().map(|pack| pack.settle())).await;
    join_all(packs.iter().map(|pack| pack.close())).await;
    Ok(result)
}

/// Runs pack `pack_id` of a flare whose other packs run elsewhere and are
/// reached through `backend`. The result holds this pack's workers only.
///
/// # Errors
/// [`SpecError`] when the inputs do not match the layout or the pack does
/// not exist.
pub async fn run_pack(
    runtime: &Arc<Runtime>,
    program: &Program,
    spec: &FlareSpec,
    pack_id: u32,
    backend: Arc<dyn Backend>,
) -> Result<FlareResult, SpecError> {
    check_spec(runtime, spec)?;
    let pack_count = spec.layout.pack_count();
    if pack_id >= pack_count {
        return Err(SpecError::NoSuchPack { pack_id, pack_count });
    }
    let deadline = Instant::now() + spec.deadline;
    let finished = start_pack(runtime, program, spec, pack_id, backend, deadline).finish().await;
    finished.pack.settle().await;
    finished.pack.close().await;
    Ok(FlareResult {
        flare_id: spec.flare_id.clone(),
        workers: finished.workers,
        bytes: finished.bytes,
        traffic: finished.traffic.into_iter().collect(),
        failure: finished.failure,
    })
}

fn check_spec(runtime: &Runtime, spec: &FlareSpec) -> Result<(), SpecError> {
    let burst_size = spec.layout.burst_size();
    if spec.inputs.len() != burst_size as usize {
        return Err(SpecError::InputCount { burst_size, got: spec.inputs.len() });
    }
    spec.limits.check()?;
    for path in spec.read_only_dir.iter().chain(spec.output.as_ref().map(|output| &output.path)) {
        if !path.is_dir() {
            return Err(SpecError::Directory { path: path.clone(), reason: "not a directory".into() });
        }
    }
    let pooled = runtime.config().max_memory_per_worker;
    if spec.limits.memory_bytes > pooled {
        let error = LimitError::AboveCap { name: "memory_bytes", value: spec.limits.memory_bytes, cap: pooled };
        return Err(error.into());
    }
    Ok(())
}

fn earliest(a: Option<Failure>, b: Option<Failure>) -> Option<Failure> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at_us < a.at_us { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// What a pack left once its workers are done.
struct FinishedPack {
    workers: Vec<WorkerResult>,
    bytes: ByteCounts,
    traffic: Option<PackTraffic>,
    failure: Option<Failure>,
    /// To close once the flare is over.
    pack: Arc<PackComm>,
}

struct RunningPack {
    pack: Arc<PackComm>,
    workers: Vec<(u32, JoinHandle<WorkerResult>)>,
    pump: JoinHandle<()>,
    /// Fails the pack when the flare is cancelled.
    watch: JoinHandle<()>,
}

fn start_pack(
    runtime: &Arc<Runtime>,
    program: &Program,
    spec: &FlareSpec,
    pack_id: u32,
    backend: Arc<dyn Backend>,
    deadline: Instant,
) -> RunningPack {
    let flare_id: Arc<str> = spec.flare_id.as_str().into();
    let pack = PackComm::new(flare_id, Arc::clone(&spec.layout), pack_id, backend, deadline, spec.limits);
    let pump = pack.spawn_pump();
    let watch = {
        let (pack, cancel) = (Arc::clone(&pack), spec.cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => pack.fail(Failure::new(None, FailureKind::Cancelled, "the flare was cancelled")),
                () = pack.cancelled() => {}
            }
        })
    };
    let sandbox = Arc::new(Sandbox {
        limits: spec.limits,
        dirs: Dirs { data: spec.read_only_dir.clone(), output: spec.output.clone() },
    });
    let workers = pack
        .range()
        .workers()
        .map(|worker_id| {
            let comm = Arc::new(WorkerComm::new(Arc::clone(&pack), worker_id));
            let input = spec.inputs[worker_id as usize].clone();
            let worker = run_worker(Arc::clone(runtime), program.clone(), comm, input, Arc::clone(&sandbox));
            let pack = Arc::clone(&pack);
            let task = tokio::spawn(async move {
                // A panic in host code fails the flare at once, naming the
                // worker it served, and releases every other worker.
                AssertUnwindSafe(worker).catch_unwind().await.unwrap_or_else(|panic| {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let message = format!("the host panicked while running this worker: {reason}");
                    let failure = Failure::new(Some(worker_id), FailureKind::Trap, message);
                    pack.fail(failure.clone());
                    WorkerResult::failed(worker_id, pack.pack_id(), failure)
                })
            });
            (worker_id, task)
        })
        .collect();
    RunningPack { pack, workers, pump, watch }
}

impl RunningPack {
    /// Waits for every worker, then for the other packs to finish (see
    /// [`PackComm::conclude`]).
    async fn finish(self) -> FinishedPack {
        let mut results = Vec::with_capacity(self.workers.len());
        for (worker_id, task) in self.workers {
            let result = task.await.unwrap_or_else(|error| {
                // Only an aborted task gets here: a panic is caught inside it.
                let failure =
                    Failure::new(Some(worker_id), FailureKind::Cancelled, format!("the worker's task ended: {error}"));
                self.pack.fail(failure.clone());
                WorkerResult::failed(worker_id, self.pack.pack_id(), failure)
            });
            results.push(result);
        }
        self.pack.conclude().await;
        self.pump.abort();
        self.watch.abort();
        FinishedPack {
            workers: results,
            bytes: self.pack.bytes(),
            traffic: self.pack.traffic(),
            failure: self.pack.failure().cloned(),
            pack: self.pack,
        }
    }
}

/// What every worker of a pack is confined to.
struct Sandbox {
    limits: Limits,
    dirs: Dirs,
}

async fn run_worker(
    runtime: Arc<Runtime>,
    program: Program,
    comm: Arc<WorkerComm>,
    input: Bytes,
    sandbox: Arc<Sandbox>,
) -> WorkerResult {
    let pack = Arc::clone(comm.pack());
    let worker_id = comm.worker_id();
    let watched = Arc::clone(&comm);
    // Instantiation counts as part of starting: `start_us` is when `work`
    // is entered.
    let placed_us = now_us();
    let instantiated_us = AtomicU64::new(0);
    let start_us = AtomicU64::new(placed_us);
    let (mut store, output) = match runtime.new_store(comm, &sandbox.limits, &sandbox.dirs) {
        Ok(store) => store,
        Err(error) => {
            let failure = Failure::new(Some(worker_id), FailureKind::Instantiate, format!("{error:#}"));
            pack.fail(failure.clone());
            return WorkerResult::failed(worker_id, pack.pack_id(), failure);
        }
    };
    let work = async {
        let worker = program.pre().instantiate_async(&mut store).await.map_err(|e| {
            let kind = if e.downcast_ref::<Exceeded>().is_some() {
                FailureKind::MemoryLimit
            } else {
                FailureKind::Instantiate
            };
            Failure::new(Some(worker_id), kind, format!("{e:#}"))
        })?;
        instantiated_us.store(now_us(), Ordering::Relaxed);
        if !pack.ready_to_start().await {
            return Err(Failure::new(Some(worker_id), FailureKind::Cancelled, pack.cancellation_error().to_string()));
        }
        start_us.store(now_us(), Ordering::Relaxed);
        tracing::debug!(flare_id = pack.flare_id(), worker_id, "worker started");
        match worker.call_work(&mut store, &input).await {
            Ok(Ok(output)) => Ok(Bytes::from(output)),
            Ok(Err(message)) => Err(Failure::new(Some(worker_id), FailureKind::GuestError, message)),
            Err(trap) => Err(trap_failure(worker_id, &trap, &output.stderr.contents().0)),
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        reason = overran(&watched, pack.deadline()) => Err(Failure::new(Some(worker_id), FailureKind::Deadline, reason)),
        () = async { pack.cancelled().await; sleep(CANCEL_GRACE).await } => {
            Err(Failure::new(Some(worker_id), FailureKind::Cancelled, format!("stopped because the flare failed ({})", pack.cancellation_error())))
        }
    };
    drop(store);
    let end_us = now_us();
    match &outcome {
        Ok(_) => tracing::debug!(flare_id = pack.flare_id(), worker_id, "worker finished"),
        Err(failure) => {
            tracing::debug!(flare_id = pack.flare_id(), worker_id, %failure, "worker failed");
            pack.fail(failure.clone());
        }
    }
    if outcome.is_ok() {
        pack.worker_returned((worker_id - pack.range().first) as usize);
    }
    let (stdout, stdout_truncated) = output.stdout.contents();
    let (stderr, stderr_truncated) = output.stderr.contents();
    WorkerResult {
        worker_id,
        pack_id: pack.pack_id(),
        placed_us,
        instantiated_us: instantiated_us.into_inner(),
        start_us: start_us.into_inner(),
        end_us,
        comm: watched.comm_time(),
        outcome,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
    }
}

/// Resolves when the worker is to blame for missing the deadline: at the
/// deadline when it is computing, [`DEADLINE_SLACK`] later when it is
/// waiting in a comm call.
async fn overran(comm: &WorkerComm, deadline: Instant) -> &'static str {
    sleep_until(deadline).await;
    if !comm.in_call() {
        return "the flare's deadline passed while the worker was computing";
    }
    sleep(DEADLINE_SLACK).await;
    "the flare's deadline passed while the worker was waiting in a comm call"
}

/// A limit the worker hit, or else the trap's code plus the end of stderr,
/// where a Rust guest prints its panic message just before trapping.
fn trap_failure(worker_id: u32, error: &wasmtime::Error, stderr: &[u8]) -> Failure {
    if let Some(exceeded) = error.downcast_ref::<Exceeded>() {
        return Failure::new(Some(worker_id), FailureKind::MemoryLimit, exceeded.to_string());
    }
    let reason = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(TRAP_STDERR_QUOTE)..]);
    let tail = tail.trim();
    let message = if tail.is_empty() { reason } else { format!("{reason}; stderr: {tail}") };
    Failure::new(Some(worker_id), FailureKind::Trap, message)
}
