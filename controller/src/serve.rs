//! `burst serve`: run the controller with its embedded host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use burst_host::comm::BrokerKind;
use clap::Args;

use crate::datasets::{DatasetGrants, Datasets};
use crate::service::{self, Quotas, ServeConfig};

/// Worker slots per CPU of the embedded host by default: workers mostly
/// wait on messages, and a Wasm instance is small.
const SLOTS_PER_CPU: u32 = 64;

/// Arguments of `burst serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BURST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the store [default: $HOME/.local/share/burst].
    #[arg(long, env = "BURST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Worker slots of the embedded host; 0 runs packs only on `burst host`
    /// daemons [default: 64 per CPU].
    #[arg(long, env = "BURST_SLOTS")]
    slots: Option<u32>,
    /// Tenants' tokens as `tenant:token,tenant:token` (none: open, one tenant).
    #[arg(long, env = "BURST_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// File of `tenant:token` lines (`#` comments).
    #[arg(long, env = "BURST_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// Token that host daemons present (none: no host may join).
    #[arg(long, env = "BURST_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
    /// Most flares waiting for slots.
    #[arg(long, default_value_t = 1024)]
    queue_limit: usize,
    /// Most definitions one tenant may keep.
    #[arg(long, default_value_t = 1000)]
    max_definitions: usize,
    /// Most versions one definition may have.
    #[arg(long, default_value_t = 100)]
    max_versions: usize,
    /// Most flares of one tenant waiting for slots.
    #[arg(long, default_value_t = 256)]
    tenant_queue_limit: usize,
    /// Most workers one tenant's running flares may hold at once (none: as
    /// many as there are slots).
    #[arg(long)]
    tenant_worker_limit: Option<u32>,
    /// A host daemon that has not polled for this many milliseconds is down.
    #[arg(long, default_value_t = 10_000)]
    host_timeout_ms: u64,
    /// Finished flares and their results are deleted this many seconds after
    /// they ended.
    #[arg(long, env = "BURST_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    retention_secs: u64,
    /// Redis URL hosts use for flares with the redis backend.
    #[arg(long, env = "BURST_REDIS_URL", default_value = BrokerKind::Redis.default_url())]
    redis_url: String,
    /// RabbitMQ URL hosts use for flares with the rabbitmq backend.
    #[arg(long, env = "BURST_RABBITMQ_URL", default_value = BrokerKind::RabbitMq.default_url())]
    rabbitmq_url: String,
    /// A dataset workers of a flare that asks for it by name read at
    /// `/data`, as `NAME=DIR` (repeatable).
    #[arg(long = "dataset", value_name = "NAME=DIR")]
    datasets: Vec<String>,
    /// Limits a dataset to some tenants, as `NAME=TENANT,TENANT`
    /// (repeatable); a dataset not named here is readable by every tenant.
    #[arg(long = "dataset-tenants", value_name = "NAME=TENANTS")]
    dataset_tenants: Vec<String>,
    /// Listen on an address other machines can reach without any tenant
    /// token: anyone who can connect may upload and run code.
    #[arg(long)]
    insecure_open: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => PathBuf::from(std::env::var_os("HOME").context("set --data-dir or HOME")?).join(".local/share/burst"),
    };
    let mut tokens: Vec<String> = args.tokens.into_iter().collect();
    if let Some(path) = &args.tokens_file {
        tokens.push(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
    }
    if tokens.is_empty() && !args.listen.ip().is_loopback() {
        if !args.insecure_open {
            bail!(
                "refusing to listen on {} without tenant tokens: anyone who can reach it could run code. Give \
                 --tokens or --tokens-file, listen on a loopback address, or pass --insecure-open",
                args.listen
            );
        }
        tracing::warn!(listen = %args.listen, "INSECURE: listening without tenant tokens; anyone who can reach this address may upload and run code");
        eprintln!("burst serve: WARNING: open to anyone who can reach {} (--insecure-open)", args.listen);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let config = ServeConfig {
        listen: args.listen,
        data_dir,
        slots: args.slots.unwrap_or(SLOTS_PER_CPU * cpus),
        tokens,
        cluster_token: args.cluster_token,
        quotas: Quotas { max_definitions: args.max_definitions, max_versions: args.max_versions },
        queue_limit: args.queue_limit,
        tenant_queue_limit: args.tenant_queue_limit,
        tenant_worker_limit: args.tenant_worker_limit.unwrap_or(u32::MAX),
        host_timeout: Duration::from_millis(args.host_timeout_ms),
        retention: Duration::from_secs(args.retention_secs),
        redis_url: args.redis_url,
        rabbitmq_url: args.rabbitmq_url,
        datasets: Datasets::parse(&args.datasets).map_err(anyhow::Error::msg)?,
        dataset_grants: DatasetGrants::parse(&args.dataset_tenants).map_err(anyhow::Error::msg)?,
    };
    tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(service::run(config))
}
