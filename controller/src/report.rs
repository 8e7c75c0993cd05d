//! The results format of a flare, and how it is shown.
//!
//! One document serves `burst run --json`, the controller's results
//! endpoint and the pack reports host daemons send: a [`PackReport`] holds
//! the workers of the packs that ran in one place, and a [`ResultDoc`]
//! merges the reports of every pack in worker-id order. Worker outputs are
//! the JSON the SDK produced; an output that is not JSON is kept as a
//! string, so a result is always printable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use burst_host::comm::{CommTime, Primitive};
use burst_host::{ByteCounts, Failure, FailureKind, FlareResult, PackTraffic};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::{FlareStatus, PackPlacement};

/// Workers listed one per line in a summary before it abbreviates.
const SUMMARY_WORKERS: usize = 16;

/// The schema of a [`FailureKind`]: a string, one of every kind's name.
fn failure_kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(FailureKind::ALL.map(FailureKind::as_str)))
        .description(Some("Why the worker failed"))
        .build()
}

/// The schema of the `traffic` lists: what each pack received, by pack.
fn traffic_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let count = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .description(Some(description))
            .build()
    };
    let pack = ObjectBuilder::new()
        .property("pack_id", count("The receiving pack"))
        .required("pack_id")
        .property(
            "from",
            ArrayBuilder::new().items(count("Bytes from one pack")).description(Some(
                "Payload bytes received from each pack, by pack id; the pack's own entry is what moved inside it",
            )),
        )
        .required("from")
        .build();
    ArrayBuilder::new()
        .items(pack)
        .description(Some("What each pack received, by source pack; empty for flares of more than 128 packs"))
        .build()
}

/// Why one worker failed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerError {
    /// `trap`, `memory_limit`, `message_limit`, `guest_error`, `deadline`,
    /// `cancelled`, `backend`, `protocol` or `instantiate`.
    #[schema(schema_with = failure_kind_schema)]
    pub kind: FailureKind,
    /// Human-readable reason.
    pub message: String,
}

/// One worker of a flare: where and when it ran, and how it ended.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerDoc {
    /// The worker's id.
    pub worker_id: u32,
    /// The pack it ran in.
    pub pack_id: u32,
    /// The host that ran its pack (controller results only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When its host began to set it up, in microseconds since the Unix
    /// epoch.
    #[serde(default)]
    pub placed_us: u64,
    /// When its component was instantiated (0 if it never was); it then
    /// waited for the rest of its pack.
    #[serde(default)]
    pub instantiated_us: u64,
    /// When `work` was entered.
    pub start_us: u64,
    /// When it returned or was stopped.
    pub end_us: u64,
    /// Microseconds it spent inside comm calls.
    #[serde(default)]
    pub comm_us: u64,
    /// Comm calls it made.
    #[serde(default)]
    pub comm_calls: u64,
    /// When it was inside comm calls: `[begin, end]` in microseconds after
    /// `start_us`, sorted and disjoint, at most 256 (short gaps between
    /// calls merged to keep within that).
    #[serde(default)]
    pub comm_spans: Vec<[u64; 2]>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WorkerError>,
    /// Captured stdout, when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Captured stderr, when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Whether stdout was cut at the capture limit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the capture limit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stderr_truncated: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What the packs that ran in one place produced.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PackReport {
    /// The flare.
    pub flare_id: String,
    /// Its workers that ran here.
    pub workers: Vec<WorkerDoc>,
    /// Their outputs (`null` for a failed worker), parallel to `workers`.
    #[schema(value_type = Vec<Object>)]
    pub outputs: Vec<Value>,
    /// Payload bytes these packs moved.
    #[schema(value_type = Object)]
    pub bytes: ByteCounts,
    /// What each of these packs received, by source pack.
    #[serde(default)]
    #[schema(schema_with = traffic_schema)]
    pub traffic: Vec<PackTraffic>,
    /// Comm calls their workers made, by primitive (only those made).
    #[serde(default)]
    pub calls: BTreeMap<String, u64>,
    /// The failure these packs saw first, if any.
    #[schema(value_type = Option<Object>)]
    pub failure: Option<Failure>,
}

impl PackReport {
    /// The report of a run of some (or all) packs of a flare.
    pub fn from_result(result: &FlareResult) -> Self {
        let workers = result
            .workers
            .iter()
            .map(|w| WorkerDoc {
                worker_id: w.worker_id,
                pack_id: w.pack_id,
                host: None,
                placed_us: w.placed_us,
                instantiated_us: w.instantiated_us,
                start_us: w.start_us,
                end_us: w.end_us,
                comm_us: w.comm.total_us,
                comm_calls: w.comm.call_count(),
                comm_spans: spans_after(&w.comm, w.start_us),
                error: w.outcome.as_ref().err().map(|f| WorkerError { kind: f.kind, message: f.message.clone() }),
                stdout: text(&w.stdout),
                stderr: text(&w.stderr),
                stdout_truncated: w.stdout_truncated,
                stderr_truncated: w.stderr_truncated,
            })
            .collect();
        let outputs =
            result.workers.iter().map(|w| w.outcome.as_ref().map_or(Value::Null, |o| output_json(o))).collect();
        Self {
            flare_id: result.flare_id.clone(),
            workers,
            outputs,
            bytes: result.bytes,
            traffic: result.traffic.clone(),
            calls: calls_of(result.workers.iter().map(|w| &w.comm)),
            failure: result.failure.clone(),
        }
    }

    /// The report of packs that could not run at all.
    pub fn failed(flare_id: &str, failure: Failure) -> Self {
        Self {
            flare_id: flare_id.to_owned(),
            workers: Vec::new(),
            outputs: Vec::new(),
            bytes: ByteCounts::default(),
            traffic: Vec::new(),
            calls: BTreeMap::new(),
            failure: Some(failure),
        }
    }
}

/// The results of a flare: outputs in worker-id order, every worker, the
/// bytes moved, and the failure that failed it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ResultDoc {
    /// The flare.
    pub flare_id: String,
    /// Workers in the flare.
    pub burst_size: u32,
    /// Workers per pack asked for (packs may differ under heterogeneous
    /// packing; see `placement`).
    pub granularity: u32,
    /// `succeeded` or `failed`.
    pub status: FlareStatus,
    /// Worker outputs in worker-id order (`null` for a failed worker).
    #[schema(value_type = Vec<Object>)]
    pub outputs: Vec<Value>,
    /// Every worker that ran, in worker-id order.
    pub workers: Vec<WorkerDoc>,
    /// Payload bytes moved inside packs (`local`), read from the broker
    /// (`remote`) and frame headers around them (`framing`).
    #[schema(value_type = Object)]
    pub bytes: ByteCounts,
    /// What each pack received, by source pack, in pack order: the
    /// pack-to-pack traffic matrix by column.
    #[serde(default)]
    #[schema(schema_with = traffic_schema)]
    pub traffic: Vec<PackTraffic>,
    /// Comm calls of every worker, by primitive (only those made).
    #[serde(default)]
    pub calls: BTreeMap<String, u64>,
    /// The earliest failure: which worker (if one is to blame), what kind,
    /// why, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub failure: Option<Failure>,
    /// The packing decision: each pack's workers and host (controller
    /// results only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Vec<PackPlacement>>,
}

impl ResultDoc {
    /// Merges the reports of every pack that ran. A flare fails when any
    /// report holds a failure or a failed worker.
    pub fn new(flare_id: &str, burst_size: u32, granularity: u32, reports: Vec<PackReport>) -> Self {
        let mut bytes = ByteCounts::default();
        let mut failure: Option<Failure> = None;
        let mut rows = Vec::new();
        let mut traffic = Vec::new();
        let mut calls = BTreeMap::new();
        for report in reports {
            bytes += report.bytes;
            traffic.extend(report.traffic);
            for (primitive, count) in report.calls {
                let sum: &mut u64 = calls.entry(primitive).or_insert(0);
                *sum = sum.saturating_add(count);
            }
            if let Some(candidate) = report.failure {
                failure = Some(match failure {
                    Some(current) if current.at_us <= candidate.at_us => current,
                    _ => candidate,
                });
            }
            rows.extend(report.workers.into_iter().zip(report.outputs));
        }
        rows.sort_by_key(|(worker, _)| worker.worker_id);
        let failure = failure.or_else(|| {
            rows.iter().find_map(|(w, _)| {
                w.error.as_ref().map(|e| Failure {
                    worker_id: Some(w.worker_id),
                    kind: e.kind,
                    message: e.message.clone(),
                    at_us: w.end_us,
                })
            })
        });
        let (workers, outputs) = rows.into_iter().unzip();
        traffic.sort_by_key(|pack: &PackTraffic| pack.pack_id);
        Self {
            flare_id: flare_id.to_owned(),
            burst_size,
            granularity,
            status: if failure.is_some() { FlareStatus::Failed } else { FlareStatus::Succeeded },
            outputs,
            workers,
            bytes,
            traffic,
            calls,
            failure,
            placement: None,
        }
    }

    /// A readable summary, `elapsed` being the flare's wall time.
    pub fn summary(&self, elapsed: Duration) -> String {
        let packs = match &self.placement {
            Some(placement) => placement.len() as u32,
            None => self.burst_size.div_ceil(self.granularity.max(1)),
        };
        let status = if self.failure.is_some() { "FAILED" } else { "succeeded" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "flare {}: {} of {} workers in {packs} packs of up to {} {status} in {:.1} ms",
            self.flare_id,
            self.workers.len(),
            self.burst_size,
            self.granularity,
            elapsed.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            out,
            "bytes moved: {} inside packs, {} between packs",
            human_bytes(self.bytes.local),
            human_bytes(self.bytes.remote)
        );
        for (w, output) in self.workers.iter().zip(&self.outputs).take(SUMMARY_WORKERS) {
            let took = w.end_us.saturating_sub(w.start_us) as f64 / 1e3;
            let shown = match &w.error {
                None => output.to_string(),
                Some(error) => format!("error: worker {}: {}: {}", w.worker_id, error.kind.as_str(), error.message),
            };
            let _ = writeln!(out, "  worker {:>4} (pack {:>3}, {took:>8.2} ms): {shown}", w.worker_id, w.pack_id);
        }
        if self.workers.len() > SUMMARY_WORKERS {
            let _ = writeln!(out, "  ... {} more workers (use --json for all)", self.workers.len() - SUMMARY_WORKERS);
        }
        out
    }
}

/// What `burst run` shows: the results of the packs that ran here.
pub struct Report {
    doc: ResultDoc,
    elapsed: Duration,
}

impl Report {
    /// A report of `result`, which may hold only the workers of one pack.
    pub fn new(result: &FlareResult, burst_size: u32, granularity: u32, elapsed: Duration) -> Self {
        let doc = ResultDoc::new(&result.flare_id, burst_size, granularity, vec![PackReport::from_result(result)]);
        Self { doc, elapsed }
    }

    /// The failure that failed the flare, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.doc.failure.as_ref()
    }

    /// The JSON document of `--json`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.doc).unwrap_or_default()
    }

    /// The readable summary.
    pub fn summary(&self) -> String {
        self.doc.summary(self.elapsed)
    }
}

/// A worker's comm spans as offsets after it entered `work`.
fn spans_after(comm: &CommTime, start_us: u64) -> Vec<[u64; 2]> {
    comm.spans.iter().map(|&(begin, end)| [begin.saturating_sub(start_us), end.saturating_sub(start_us)]).collect()
}

/// The calls of `workers`, by primitive name, leaving out those not made.
fn calls_of<'a>(workers: impl Iterator<Item = &'a CommTime>) -> BTreeMap<String, u64> {
    let mut total = [0u64; Primitive::COUNT];
    for comm in workers {
        for (sum, count) in total.iter_mut().zip(comm.calls) {
            *sum += count;
        }
    }
    Primitive::ALL.into_iter().zip(total).filter(|&(_, n)| n > 0).map(|(p, n)| (p.name().to_owned(), n)).collect()
}

fn output_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn text(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
