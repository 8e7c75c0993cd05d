//! Flares run in this process by the pack host, as `burst run` runs them:
//! packs over an in-process broker (`memory`, which counts what crosses
//! packs), or each pack connected to Redis or RabbitMQ on its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use burst_host::comm::{self, BrokerKind, BrokerOptions};
use burst_host::{FlareResult, FlareSpec, Limits, OutputDir, PackLayout, Program, Runtime, RuntimeConfig};
use bytes::Bytes;
use serde_json::Value;

/// Longest any measured flare may take.
const DEADLINE: Duration = Duration::from_secs(1800);

/// Payload bytes per broker frame (the CLI's default).
const CHUNK_BYTES: usize = 1 << 20;

/// How packs talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The in-process broker.
    Memory,
    /// Redis lists.
    Redis,
    /// RabbitMQ queues.
    Rabbitmq,
}

impl Backend {
    /// The name in settings and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Rabbitmq => "rabbitmq",
        }
    }
}

/// Loads guests and runs flares of them.
pub struct Runner {
    runtime: Arc<Runtime>,
    backend: Backend,
    guests: PathBuf,
}

/// What a flare may read and write.
#[derive(Default)]
pub struct Dirs<'a> {
    /// Seen as `/data`.
    pub data: Option<&'a Path>,
    /// Seen as `/out`, with its quota.
    pub output: Option<OutputDir>,
}

impl Runner {
    /// A runner for flares of up to `max_workers`, guests from `guests`.
    pub fn new(max_workers: u32, backend: Backend, guests: PathBuf) -> anyhow::Result<Self> {
        let runtime = Arc::new(Runtime::new(RuntimeConfig { max_workers, ..RuntimeConfig::default() })?);
        Ok(Self { runtime, backend, guests })
    }

    /// The backend between packs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The runtime the flares run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads guest `name` (compiled once, cached in memory by the caller).
    pub fn load(&self, name: &str) -> anyhow::Result<Program> {
        self.load_path(&self.guests.join(format!("{name}.wasm")))
    }

    /// Loads the component at `path`.
    pub fn load_path(&self, path: &Path) -> anyhow::Result<Program> {
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(self.runtime.load(&wasm, None)?)
    }

    /// Runs `program` on `workers` in packs of `granularity`, every worker
    /// given `input`; fails when the flare fails, naming the worker.
    pub async fn run(
        &self,
        program: &Program,
        workers: u32,
        granularity: u32,
        input: &Value,
        dirs: Dirs<'_>,
    ) -> anyhow::Result<FlareResult> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let layout = Arc::new(PackLayout::homogeneous(workers, granularity)?);
        let flare_id = format!("bench-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let input = Bytes::from(serde_json::to_vec(input)?);
        let mut spec = FlareSpec::new(flare_id, Arc::clone(&layout), vec![input; workers as usize], DEADLINE);
        spec.read_only_dir = dirs.data.map(Path::to_owned);
        spec.output = dirs.output;
        let kind = match self.backend {
            Backend::Memory => None,
            Backend::Redis => Some(BrokerKind::Redis),
            Backend::Rabbitmq => Some(BrokerKind::RabbitMq),
        };
        let result = match kind {
            None => burst_host::run_flare(&self.runtime, program, &spec).await?,
            Some(kind) => {
                let options = BrokerOptions {
                    kind,
                    url: kind.default_url().to_owned(),
                    chunk_bytes: CHUNK_BYTES,
                    deadline: DEADLINE,
                    message_bytes: Limits::default().message_bytes,
                };
                let mut backends = Vec::new();
                for pack in 0..layout.pack_count() {
                    let backend = comm::connect(&options, &spec.flare_id, pack, layout.pack_count())
                        .await
                        .with_context(|| format!("connecting pack {pack} to {}", options.url))?;
                    backends.push(backend);
                }
                burst_host::run_flare_over(&self.runtime, program, &spec, backends).await?
            }
        };
        if let Some(failure) = &result.failure {
            bail!("flare {} (N={workers}, G={granularity}) failed: {failure}", result.flare_id);
        }
        Ok(result)
    }
}

/// Every worker's output, decoded.
pub fn outputs(result: &FlareResult) -> anyhow::Result<Vec<Value>> {
    result
        .workers
        .iter()
        .map(|w| {
            let bytes = w.outcome.as_ref().map_err(|f| anyhow::anyhow!("worker {}: {f}", w.worker_id))?;
            Ok(serde_json::from_slice(bytes)?)
        })
        .collect()
}

/// Seconds from the first worker entering `work` to the last one leaving it.
pub fn span_seconds(result: &FlareResult) -> f64 {
    let start = result.workers.iter().map(|w| w.start_us).min().unwrap_or(0);
    let end = result.workers.iter().map(|w| w.end_us).max().unwrap_or(start);
    end.saturating_sub(start) as f64 / 1e6
}
