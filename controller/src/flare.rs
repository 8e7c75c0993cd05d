//! `burst flare NAME`: start a flare of a deployed definition, and with
//! `--wait` follow its progress and print its results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args};
use serde_json::{Map, Value};

use crate::api::{FlareAccepted, FlareDoc, FlareRequest};
use crate::client::{Client, Connection, block_on};
use crate::results::print_results;
use crate::sandbox::SandboxArgs;

/// How often `--wait` asks for progress.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Arguments of `burst flare`.
#[derive(Args)]
#[command(group(ArgGroup::new("inputs_source").required(true).args(["inputs_file", "workers"])))]
pub struct FlareArgs {
    /// The definition to run.
    name: String,
    /// File holding a JSON array with one input per worker.
    #[arg(long)]
    inputs_file: Option<PathBuf>,
    /// Number of workers, each given `--input`.
    #[arg(long, short = 'n')]
    workers: Option<u32>,
    /// JSON input of every worker (with --workers).
    #[arg(long, requires = "workers")]
    input: Option<String>,
    /// Workers per pack.
    #[arg(long, short = 'g')]
    granularity: Option<u32>,
    /// homogeneous, heterogeneous or mixed.
    #[arg(long)]
    packing: Option<String>,
    /// memory, redis or rabbitmq.
    #[arg(long)]
    backend: Option<String>,
    /// Deadline in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Wait for the flare to finish, showing progress, and print its results.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    wait_timeout: u64,
    /// With --wait: print the results as one JSON document.
    #[arg(long)]
    json: bool,
    /// A dataset the operator named, read by every worker at `/data`.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// Give the workers a writable `/out`; fetch its files with `burst
    /// results ID --download DIR`.
    #[arg(long)]
    output: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    connection: Connection,
}

fn request_of(args: &FlareArgs) -> anyhow::Result<FlareRequest> {
    let mut request = FlareRequest {
        definition: args.name.clone(),
        granularity: args.granularity,
        packing: args.packing.clone(),
        backend: args.backend.clone(),
        deadline_ms: args.deadline_ms,
        dataset: args.dataset.clone(),
        output: args.output,
        output_quota_bytes: args.sandbox.output_quota,
        ..FlareRequest::default()
    };
    if args.sandbox.read_only_dir.is_some() || args.sandbox.output_dir.is_some() {
        bail!(
            "--read-only-dir and --output-dir are for `burst run`; a deployed flare reads a dataset the operator \
             named (--dataset NAME) and writes to the controller's store (--output)"
        );
    }
    if args.sandbox.output_quota.is_some() && !args.output {
        bail!("--output-quota goes with --output");
    }
    // Only the limits given here: the rest come from the deployment.
    let sandbox = &args.sandbox;
    let limits: Map<String, Value> = [
        ("memory_bytes", sandbox.memory_limit),
        ("message_bytes", sandbox.message_limit),
        ("buffered_bytes", sandbox.buffered_limit),
        ("output_bytes", sandbox.output_limit),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), Value::from(value?))))
    .collect();
    request.limits = (!limits.is_empty()).then_some(limits);
    if let Some(path) = &args.inputs_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let inputs: Vec<Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} must hold a JSON array with one input per worker", path.display()))?;
        request.inputs = Some(inputs);
    } else {
        request.burst_size = args.workers;
        if let Some(input) = &args.input {
            request.input = Some(serde_json::from_str(input).context("--input is not valid JSON")?);
        }
    }
    Ok(request)
}

pub fn run(args: FlareArgs) -> anyhow::Result<ExitCode> {
    let request = request_of(&args)?;
    let client = Client::new(&args.connection)?;
    block_on(async {
        let accepted: FlareAccepted = client.post("/v1/flares", &request).await?;
        if !args.wait {
            println!("{}", accepted.flare_id);
            return Ok(ExitCode::SUCCESS);
        }
        let id = accepted.flare_id;
        let started = Instant::now();
        let mut shown = String::new();
        loop {
            let doc: FlareDoc = client.get(&format!("/v1/flares/{id}")).await?;
            let line = format!(
                "flare {id}: {} ({}/{} workers started, {} finished)",
                doc.status.as_str(),
                doc.workers_started,
                doc.burst_size,
                doc.workers_finished
            );
            // Progress goes to stderr, so stdout holds only the results.
            if line != shown {
                eprintln!("{line}");
                shown = line;
            }
            if doc.status.is_final() {
                break;
            }
            if started.elapsed() > Duration::from_secs(args.wait_timeout) {
                bail!(
                    "flare {id} is still {} after {} s; see `burst status {id}`",
                    doc.status.as_str(),
                    args.wait_timeout
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        print_results(&client, &id, args.json).await
    })?
}
