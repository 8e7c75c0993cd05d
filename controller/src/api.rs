//! The wire types of the controller's HTTP API, shared by the service, the
//! CLI and the host daemon.
//!
//! Everything here is plain serde data; validation happens where requests
//! are handled. `/openapi.json` is generated from these types and the
//! handlers' annotations.

use std::sync::Arc;

use burst_host::{Failure, Limits};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::report::PackReport;

/// An error answer: a stable machine-readable `code` and a human `message`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `not_found`, `bad_granularity`, `never_fits`.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// Defaults a deployment gives its flares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Workers per pack when a flare does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<u32>,
    /// Linear memory cap of each worker, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Deadline of a flare, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// One deployed version of a definition.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// 1 for the first deploy of a name, then counting up.
    pub version: u32,
    /// Hex SHA-256 of the component.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When it was deployed, in microseconds since the Unix epoch.
    pub created_us: u64,
    /// Its flare defaults.
    pub defaults: Defaults,
}

/// A named work function and its versions (the last is the current one).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Definition {
    /// The name flares use.
    pub name: String,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
}

impl Definition {
    /// The version flares run unless they name another.
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }
}

/// A request to start a flare.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlareRequest {
    /// The definition to run.
    pub definition: String,
    /// Its version (default: the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// One JSON input per worker; the burst size is its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub inputs: Option<Vec<Value>>,
    /// The burst size, when every worker gets the same `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_size: Option<u32>,
    /// The input of every worker with `burst_size` (default `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Workers per pack (default: the deployment's, else the burst size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<u32>,
    /// `homogeneous` (default), `heterogeneous` or `mixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packing: Option<String>,
    /// `memory` (default; every pack on one host), `redis` or `rabbitmq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Deadline in milliseconds (default: the deployment's, else 300 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Answer only when the flare has finished, with its results.
    #[serde(default)]
    pub wait: bool,
    /// Per-worker limits (fields of `burst_host::Limits`), over the
    /// deployment's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub limits: Option<Map<String, Value>>,
    /// A dataset the operator named (`burst serve --dataset NAME=DIR`),
    /// seen read-only by every worker at `/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Give the workers a writable `/out`, kept with the results
    /// (`GET /v1/flares/{id}/outputs`) and deleted with them.
    #[serde(default)]
    pub output: bool,
    /// Bytes the workers may write to `/out` in all (default 1 GiB, at most
    /// 256 GiB); only with `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_quota_bytes: Option<u64>,
}

/// Where a flare is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlareStatus {
    /// Waiting for slots.
    Queued,
    /// Every worker holds a slot and its packs have been handed out.
    Running,
    /// Every worker succeeded.
    Succeeded,
    /// A worker, a host or the flare's deadline failed it.
    Failed,
}

impl FlareStatus {
    /// Whether the flare has ended.
    pub fn is_final(self) -> bool {
        matches!(self, FlareStatus::Succeeded | FlareStatus::Failed)
    }

    /// The name in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            FlareStatus::Queued => "queued",
            FlareStatus::Running => "running",
            FlareStatus::Succeeded => "succeeded",
            FlareStatus::Failed => "failed",
        }
    }
}

/// One pack of a flare and the host it was placed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PackPlacement {
    /// The pack.
    pub pack_id: u32,
    /// Its first worker.
    pub first: u32,
    /// Its number of workers.
    pub count: u32,
    /// The host that runs it.
    pub host: String,
}

/// The state of a flare (what `GET /v1/flares/{id}` answers).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FlareDoc {
    /// The flare.
    pub flare_id: String,
    /// The definition it runs.
    pub definition: String,
    /// The definition's version.
    pub version: u32,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: FlareStatus,
    /// Workers in the flare.
    pub burst_size: u32,
    /// Workers per pack asked for.
    pub granularity: u32,
    /// The packing strategy.
    pub packing: String,
    /// The backend between packs.
    pub backend: String,
    /// Deadline in milliseconds from the start.
    pub deadline_ms: u64,
    /// Workers whose packs have been handed to a host.
    pub workers_started: u32,
    /// Workers whose packs have reported back.
    pub workers_finished: u32,
    /// When the flare was accepted (µs since the Unix epoch).
    pub created_us: u64,
    /// When its packs were handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_us: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_us: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub failure: Option<Failure>,
    /// The packing decision, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Vec<PackPlacement>>,
    /// The dataset its workers read at `/data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// With an output directory: the bytes its workers may write to `/out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_quota_bytes: Option<u64>,
}

/// The answer to a flare request made without `wait`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FlareAccepted {
    /// The new flare's id.
    pub flare_id: String,
    /// `queued` or `running`.
    pub status: FlareStatus,
}

/// A host as `GET /health` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostDoc {
    /// Its id (`local` for the controller's embedded host).
    pub host_id: String,
    /// Its name.
    pub name: String,
    /// Worker slots it offers.
    pub slots: u32,
    /// Slots not reserved by a flare.
    pub free_slots: u32,
    /// `up`, or `down` once it stopped polling.
    pub state: String,
}

/// Health and capacity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the controller answers.
    pub status: String,
    /// Every host the controller knows.
    pub hosts: Vec<HostDoc>,
    /// Slots of the hosts that are up.
    pub slots: u32,
    /// Of those, not reserved.
    pub free_slots: u32,
    /// Flares waiting for slots.
    pub queued: u32,
    /// Flares running.
    pub running: u32,
}

/// A host daemon's registration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// A name for people (e.g. the machine's hostname).
    pub name: String,
    /// Worker slots it offers.
    pub slots: u32,
    /// The datasets it has (`burst host --dataset NAME=DIR`): flares that
    /// read one are placed only on hosts that have it.
    #[serde(default)]
    pub datasets: Vec<String>,
}

/// The controller's answer to a registration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The id the host uses from now on.
    pub host_id: String,
    /// This host's own credential: its polls and reports carry it as their
    /// bearer token (the cluster token only registers).
    pub host_token: String,
    /// The host is marked down when it has not polled for this long.
    pub timeout_ms: u64,
}

/// The backend between the packs of a flare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// An in-process broker: every pack on one host.
    Memory,
    /// Redis lists.
    Redis,
    /// RabbitMQ queues.
    Rabbitmq,
}

impl BackendChoice {
    /// The name in requests and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Memory => "memory",
            BackendChoice::Redis => "redis",
            BackendChoice::Rabbitmq => "rabbitmq",
        }
    }
}

/// The packs of one flare that one host runs.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// The flare.
    pub flare_id: String,
    /// Digest of the component (fetch it from `/v1/components/{digest}`).
    pub digest: String,
    /// Sizes of every pack of the flare, in pack-id order.
    pub pack_sizes: Vec<u32>,
    /// The packs this host runs.
    pub packs: Vec<u32>,
    /// Inputs of the workers of `packs`, in worker-id order (workers given
    /// the same input share one value in the controller's memory).
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<Arc<Value>>,
    /// The flare's deadline in milliseconds from the start.
    pub deadline_ms: u64,
    /// Each worker's limits.
    #[schema(value_type = Object)]
    pub limits: Limits,
    /// How the packs talk.
    pub backend: BackendChoice,
    /// The broker's URL (not for `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_url: Option<String>,
    /// The dataset the workers read at `/data` (the host has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// With an output directory: the bytes the flare may write to `/out`.
    /// A remote host uploads what its workers wrote before it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_quota_bytes: Option<u64>,
}

/// A host's answer to a poll: packs to start, and flares of its running
/// packs that ended elsewhere (failed or cancelled), whose packs it stops.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Work {
    /// Packs to run.
    pub assignments: Vec<Assignment>,
    /// Flares whose packs on this host are to be stopped now.
    pub cancel: Vec<String>,
}

impl Work {
    /// Nothing to start or stop.
    pub fn is_empty(&self) -> bool {
        self.assignments.is_empty() && self.cancel.is_empty()
    }
}

/// What a host ran of one flare.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostReport {
    /// The flare.
    pub flare_id: String,
    /// One report per pack it ran (or one failure).
    pub reports: Vec<PackReport>,
}

/// A file a flare's workers wrote to `/out`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutputFile {
    /// Its path under `/out`, `/`-separated.
    pub path: String,
    /// Its size.
    pub bytes: u64,
}

/// What `GET /v1/flares/{id}/outputs` answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Outputs {
    /// Every file, in path order.
    pub files: Vec<OutputFile>,
    /// Their sizes summed.
    pub bytes: u64,
}
