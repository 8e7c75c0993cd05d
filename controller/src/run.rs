//! `burst run`: one flare of a local `.wasm` file, every pack in this process.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use burst_host::comm::frame::DEFAULT_CHUNK_BYTES;
use burst_host::comm::{self, BrokerKind, BrokerOptions};
use burst_host::limits::{DEFAULT_OUTPUT_QUOTA, MAX_OUTPUT_QUOTA};
use burst_host::{FlareSpec, Limits, OutputDir, PackLayout, Runtime, RuntimeConfig};
use bytes::Bytes;
use clap::{ArgGroup, Args, ValueEnum};

use crate::report;
use crate::sandbox::SandboxArgs;

/// Arguments of `burst run`.
#[derive(Args)]
#[command(group(ArgGroup::new("input_source").args(["input", "input_file", "inputs_file"])))]
pub struct RunArgs {
    /// The work function: a component built for wasm32-wasip2.
    file: PathBuf,
    /// Number of workers (the burst size).
    #[arg(long, short = 'n')]
    workers: u32,
    /// Workers per pack; packs talk through the in-process broker.
    /// Defaults to one pack holding every worker.
    #[arg(long, short = 'g')]
    granularity: Option<u32>,
    /// JSON input given to every worker.
    #[arg(long)]
    input: Option<String>,
    /// File whose JSON content is given to every worker.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// File holding a JSON array with one input per worker.
    #[arg(long)]
    inputs_file: Option<PathBuf>,
    /// Seconds until the flare fails with a deadline error.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    /// Flare id (default: a fresh one).
    #[arg(long)]
    flare_id: Option<String>,
    /// Directory of compiled artifacts [default: $BURST_CACHE_DIR, or ~/.cache/burst].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// How packs talk to each other.
    #[arg(long, value_enum, default_value_t = BackendKind::Memory)]
    backend: BackendKind,
    /// URL of the broker [default: redis://127.0.0.1:6379 or
    /// amqp://guest:guest@127.0.0.1:5672/%2f].
    #[arg(long, env = "BURST_BROKER_URL")]
    broker_url: Option<String>,
    /// Run only this pack of the flare; the other packs run in other
    /// processes with the same --flare-id, --workers, --granularity and
    /// broker.
    #[arg(long, requires = "flare_id")]
    pack: Option<u32>,
    /// Payload bytes per frame sent through a broker.
    #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES)]
    chunk_bytes: usize,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// The path between packs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// An in-process broker (every pack in this process).
    Memory,
    /// A Redis server.
    Redis,
    /// A RabbitMQ broker.
    Rabbitmq,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let granularity = args.granularity.unwrap_or(args.workers);
    let layout = Arc::new(PackLayout::homogeneous(args.workers, granularity)?);
    let inputs = read_inputs(&args, args.workers)?;
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let flare_id = args.flare_id.clone().unwrap_or_else(new_flare_id);
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let limits = args.sandbox.limits(Limits::default());
    let outcome = tokio.block_on(async {
        // The pool reserves address space for as many workers, and as much
        // memory each, as this flare may use here — no more.
        let config = RuntimeConfig {
            max_workers: args.workers,
            max_memory_per_worker: limits.memory_bytes,
            ..RuntimeConfig::default()
        };
        let runtime = Arc::new(Runtime::new(config)?);
        let cache_dir = args.cache_dir.clone().or_else(default_cache_dir);
        if progress {
            eprintln!("loading {} ...", args.file.display());
        }
        let program =
            runtime.load(&wasm, cache_dir.as_deref()).with_context(|| format!("loading {}", args.file.display()))?;
        let mut spec = FlareSpec::new(flare_id, layout, inputs, Duration::from_secs(args.timeout));
        spec.limits = limits;
        spec.read_only_dir = args.sandbox.read_only_dir.clone();
        if args.sandbox.output_quota.is_some() && args.sandbox.output_dir.is_none() {
            bail!("--output-quota goes with --output-dir");
        }
        if let Some(dir) = &args.sandbox.output_dir {
            let quota = args.sandbox.output_quota.unwrap_or(DEFAULT_OUTPUT_QUOTA);
            if quota > MAX_OUTPUT_QUOTA {
                bail!("--output-quota {quota} is above the cap of {MAX_OUTPUT_QUOTA} bytes");
            }
            spec.output = Some(OutputDir::new(dir, quota));
        }
        if progress {
            eprintln!(
                "running flare {} with {} workers in {} packs ...",
                spec.flare_id,
                args.workers,
                spec.layout.pack_count()
            );
        }
        let started = Instant::now();
        let result = match (args.backend, args.pack) {
            (BackendKind::Memory, None) => burst_host::run_flare(&runtime, &program, &spec).await?,
            (BackendKind::Memory, Some(_)) => bail!("--pack needs a broker: add --backend redis or rabbitmq"),
            (broker, pack) => {
                let kind = if broker == BackendKind::Redis { BrokerKind::Redis } else { BrokerKind::RabbitMq };
                let options = BrokerOptions {
                    kind,
                    url: args.broker_url.clone().unwrap_or_else(|| kind.default_url().to_owned()),
                    chunk_bytes: args.chunk_bytes,
                    deadline: spec.deadline,
                    message_bytes: spec.limits.message_bytes,
                };
                let pack_count = spec.layout.pack_count();
                match pack {
                    Some(pack_id) => {
                        let backend = comm::connect(&options, &spec.flare_id, pack_id, pack_count).await?;
                        burst_host::run_pack(&runtime, &program, &spec, pack_id, backend).await?
                    }
                    None => {
                        let mut backends = Vec::new();
                        for pack_id in 0..pack_count {
                            backends.push(comm::connect(&options, &spec.flare_id, pack_id, pack_count).await?);
                        }
                        burst_host::run_flare_over(&runtime, &program, &spec, backends).await?
                    }
                }
            }
        };
        let report = report::Report::new(&result, args.workers, granularity, started.elapsed());
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        } else {
            print!("{}", report.summary());
        }
        Ok(if let Some(failure) = report.failure() {
            eprintln!("error: flare {} failed: {failure}", result.flare_id);
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    });
    // Whatever a broker client still runs in the background (a connection
    // to a broker that stopped answering) must not keep the process alive.
    tokio.shutdown_timeout(SHUTDOWN_TIMEOUT);
    outcome
}

/// How long the process waits at exit for background tasks to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

fn read_inputs(args: &RunArgs, workers: u32) -> anyhow::Result<Vec<Bytes>> {
    let shared = |text: String| -> anyhow::Result<Vec<Bytes>> {
        let value: serde_json::Value = serde_json::from_str(&text).context("the input is not valid JSON")?;
        Ok(vec![Bytes::from(serde_json::to_vec(&value)?); workers as usize])
    };
    if let Some(input) = &args.input {
        return shared(input.clone());
    }
    if let Some(path) = &args.input_file {
        return shared(read_text(path)?);
    }
    if let Some(path) = &args.inputs_file {
        let values: Vec<serde_json::Value> = serde_json::from_str(&read_text(path)?)
            .with_context(|| format!("{} must hold a JSON array with one input per worker", path.display()))?;
        if values.len() != workers as usize {
            bail!("{} holds {} inputs, but --workers is {workers}", path.display(), values.len());
        }
        return values.iter().map(|v| Ok(Bytes::from(serde_json::to_vec(v)?))).collect();
    }
    Ok(vec![Bytes::from_static(b"null"); workers as usize])
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("BURST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/burst")))
}

fn new_flare_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("flare-{:x}-{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}
