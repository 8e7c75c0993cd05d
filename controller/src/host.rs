//! `burst host`: a host daemon that runs packs for a controller.
//!
//! It registers its slots, then polls the controller for packs (each poll
//! is its heartbeat), fetches each component once by digest (checked
//! against its SHA-256 and cached on disk, compiled artifacts too), runs
//! its packs through the pack runtime, and reports their results. A poll
//! also names flares that ended elsewhere (failed or cancelled): their
//! packs here are stopped at once, whatever the backend. When the
//! controller no longer knows it (restarted, or marked it down), it
//! registers again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use burst_host::limits::MAX_OUTPUT_QUOTA;
use burst_host::{
    CancellationToken, Failure, FailureKind, OutputDir, Program, Runtime, RuntimeConfig, write_atomically,
};
use clap::Args;
use reqwest::Method;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::api::{Assignment, HostReport, Register, Registered, Work};
use crate::client::{Client, ClientError, Connection};
use crate::datasets::Datasets;
use crate::execute::{Grants, execute};
use crate::outputs;
use crate::report::PackReport;

/// Pause before retrying after the controller could not be reached.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Attempts to deliver a report before giving up on it (the controller
/// then fails the flare at its deadline).
const REPORT_ATTEMPTS: u32 = 5;

/// Arguments of `burst host`.
#[derive(Args)]
pub struct HostArgs {
    /// URL of the controller.
    #[arg(long, env = "BURST_URL")]
    controller: String,
    /// The controller's cluster token.
    #[arg(long, env = "BURST_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: String,
    /// Worker slots this host offers.
    #[arg(long)]
    slots: u32,
    /// Name shown by the controller [default: the hostname].
    #[arg(long)]
    name: Option<String>,
    /// Directory of fetched components and compiled artifacts
    /// [default: $BURST_CACHE_DIR, or ~/.cache/burst].
    #[arg(long, env = "BURST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// A dataset this host has, as `NAME=DIR` (repeatable): flares that
    /// read it are placed only on hosts that have it, under the same name.
    #[arg(long = "dataset", value_name = "NAME=DIR")]
    datasets: Vec<String>,
}

struct Daemon {
    client: Client,
    runtime: Arc<Runtime>,
    cache_dir: PathBuf,
    datasets: Datasets,
    programs: Mutex<HashMap<String, Program>>,
    /// Stops the packs of each flare running here.
    running: Mutex<HashMap<String, CancellationToken>>,
}

pub fn run(args: HostArgs) -> anyhow::Result<()> {
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => PathBuf::from(std::env::var_os("HOME").context("set --cache-dir or HOME")?).join(".cache/burst"),
    };
    let name = args.name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname").map_or_else(|_| "host".into(), |n| n.trim().to_owned())
    });
    let datasets = Datasets::parse(&args.datasets).map_err(anyhow::Error::msg)?;
    let connection = Connection { url: args.controller, token: Some(args.cluster_token) };
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async {
        let daemon = Arc::new(Daemon {
            client: Client::new(&connection)?,
            runtime: Arc::new(Runtime::new(RuntimeConfig { max_workers: args.slots, ..RuntimeConfig::default() })?),
            cache_dir,
            datasets,
            programs: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        });
        tokio::select! {
            result = daemon.serve(name, args.slots) => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

impl Daemon {
    /// Registers, then polls and runs packs; registers again when the
    /// controller forgot this host.
    async fn serve(self: &Arc<Self>, name: String, slots: u32) -> anyhow::Result<()> {
        let mut running = JoinSet::new();
        loop {
            let datasets = self.datasets.names().into_iter().collect();
            let registered: Registered =
                match self.client.post("/v1/hosts", &Register { name: name.clone(), slots, datasets }).await {
                    Ok(registered) => registered,
                    Err(ClientError::Api { code, message, .. }) if code != "http" => {
                        bail!("the controller refused this host: {message} ({code})")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot register; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                };
            let id = registered.host_id;
            // Polls and reports carry this host's own credential.
            let client = Arc::new(self.client.with_token(registered.host_token));
            println!("burst host: registered as {id} with {slots} slots");
            // Poll well within the timeout, so a slow answer never makes the
            // host look down.
            let wait_ms = registered.timeout_ms / 3;
            loop {
                while running.try_join_next().is_some() {}
                let path = format!("/v1/hosts/{id}/work?wait_ms={wait_ms}");
                match client.get::<Work>(&path).await {
                    Ok(work) => {
                        for flare_id in work.cancel {
                            if let Some(cancel) = self.running().get(&flare_id) {
                                tracing::info!(flare_id, "the flare ended elsewhere; stopping its packs here");
                                cancel.cancel();
                            }
                        }
                        for assignment in work.assignments {
                            let (daemon, client) = (Arc::clone(self), Arc::clone(&client));
                            let id = id.clone();
                            running.spawn(async move { daemon.run_assignment(&client, &id, assignment).await });
                        }
                    }
                    Err(ClientError::Api { code, .. }) if code == "unknown_host" => {
                        tracing::warn!(host_id = id, "the controller no longer knows this host; registering again");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "polling failed; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run_assignment(&self, client: &Client, host_id: &str, assignment: Assignment) {
        let cancel = CancellationToken::new();
        self.running().insert(assignment.flare_id.clone(), cancel.clone());
        let flare_id = assignment.flare_id.as_str();
        let ran = async {
            let grants = self.grants(&assignment).map_err(|e| (FailureKind::Instantiate, e))?;
            let program = self.program(&assignment.digest).await.map_err(|e| (FailureKind::Instantiate, e))?;
            let reports = execute(&self.runtime, &program, &assignment, grants.clone(), cancel).await;
            if let Some(output) = &grants.output {
                // Outputs travel to the controller before the report, so a
                // flare is finished only with all its files in the store.
                let uploaded = self.upload_outputs(client, host_id, flare_id, &output.path).await;
                let _ = std::fs::remove_dir_all(&output.path);
                uploaded.map_err(|e| (FailureKind::Backend, e.context("uploading the flare's outputs")))?;
            }
            Ok::<_, (FailureKind, anyhow::Error)>(reports)
        };
        let reports = ran.await.unwrap_or_else(|(kind, error)| {
            vec![PackReport::failed(flare_id, Failure::new(None, kind, format!("{error:#}")))]
        });
        self.running().remove(flare_id);
        let body = HostReport { flare_id: assignment.flare_id.clone(), reports };
        let path = format!("/v1/hosts/{host_id}/reports");
        for attempt in 1..=REPORT_ATTEMPTS {
            match client.send(client.request(Method::POST, &path).json(&body)).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(flare_id = assignment.flare_id, attempt, %error, "reporting failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    /// What the assignment's workers see: its dataset, from this host's, and
    /// a fresh output directory under the cache directory.
    fn grants(&self, assignment: &Assignment) -> anyhow::Result<Grants> {
        let data = match &assignment.dataset {
            Some(name) => Some(self.datasets.dir(name).with_context(|| format!("this host has no dataset `{name}`"))?),
            None => None,
        };
        let output = match assignment.output_quota_bytes {
            Some(quota) if quota > MAX_OUTPUT_QUOTA => bail!("output quota {quota} is above {MAX_OUTPUT_QUOTA}"),
            Some(quota) => {
                let dir = outputs::flare_dir(&self.cache_dir.join("outputs"), &assignment.flare_id)?;
                // A directory left by an earlier run of this flare id is not
                // this run's output.
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                Some(OutputDir::new(dir, quota))
            }
            None => None,
        };
        Ok(Grants { data: data.map(Into::into), output })
    }

    /// Uploads every file under `dir`, one streamed request each.
    async fn upload_outputs(&self, client: &Client, host_id: &str, flare_id: &str, dir: &Path) -> anyhow::Result<()> {
        let listed = {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || outputs::list(&dir)).await??
        };
        for file in listed.files {
            let opened = outputs::open(dir, &file.path)?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(opened)));
            let path = format!("/v1/hosts/{host_id}/outputs/{flare_id}/{}", outputs::url_segment(&file.path));
            let request = client.request(Method::PUT, &path).header("content-type", "application/octet-stream");
            client.send(request.body(body)).await.with_context(|| format!("uploading {}", file.path))?;
        }
        Ok(())
    }

    /// The compiled program of a digest: from memory, the disk cache, or
    /// the controller.
    async fn program(&self, digest: &str) -> anyhow::Result<Program> {
        if let Some(program) = self.programs.lock().unwrap_or_else(PoisonError::into_inner).get(digest) {
            return Ok(program.clone());
        }
        let path = self.cache_dir.join("components").join(format!("{digest}.wasm"));
        let wasm = match std::fs::read(&path) {
            Ok(wasm) if hex::encode(Sha256::digest(&wasm)) == digest => wasm,
            _ => self.fetch(digest, &path).await?,
        };
        let (runtime, artifacts) = (Arc::clone(&self.runtime), self.cache_dir.join("artifacts"));
        let program = tokio::task::spawn_blocking(move || runtime.load(&wasm, Some(&artifacts))).await??;
        self.programs.lock().unwrap_or_else(PoisonError::into_inner).insert(digest.to_owned(), program.clone());
        Ok(program)
    }

    async fn fetch(&self, digest: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
        let request = self.client.request(Method::GET, &format!("/v1/components/{digest}"));
        let response = self.client.send(request).await?;
        let wasm = response.bytes().await.context("reading the component")?.to_vec();
        if hex::encode(Sha256::digest(&wasm)) != digest {
            bail!("the component fetched for {digest} has another digest");
        }
        let dir = path.parent().context("cache path has a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // A temporary file of its own, renamed into place: two packs of one
        // component fetched at once never write the same file.
        write_atomically(path, &wasm).with_context(|| format!("writing {}", path.display()))?;
        Ok(wasm)
    }
}
