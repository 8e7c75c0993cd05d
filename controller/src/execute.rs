//! Running the packs one host was assigned, in this process.
//!
//! Shared by the controller's embedded host and `burst host`, so an
//! assignment runs the same way wherever it lands. With the memory backend
//! the host holds every pack of the flare and runs them over an in-process
//! broker; with a broker each pack connects on its own and runs as
//! `burst run --pack` does, the flare's other packs running elsewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burst_host::comm::frame::DEFAULT_CHUNK_BYTES;
use burst_host::comm::{self, BrokerKind, BrokerOptions};
use burst_host::{CancellationToken, Failure, FailureKind, FlareSpec, OutputDir, PackLayout, Program, Runtime};
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::api::{Assignment, BackendChoice};
use crate::report::PackReport;

/// The host directories an assignment's workers see, resolved by the host
/// from the assignment's dataset name and output quota.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Seen read-only at `/data`.
    pub data: Option<PathBuf>,
    /// Seen writable at `/out`.
    pub output: Option<OutputDir>,
}

/// Runs an assignment; whatever goes wrong is in the reports, one per pack
/// that ran (or one failure when none could). Cancelling `cancel` stops its
/// packs (the flare fails with `cancelled`).
pub async fn execute(
    runtime: &Arc<Runtime>,
    program: &Program,
    assignment: &Assignment,
    grants: Grants,
    cancel: CancellationToken,
) -> Vec<PackReport> {
    match try_execute(runtime, program, assignment, grants, cancel).await {
        Ok(reports) => reports,
        Err((kind, message)) => vec![PackReport::failed(&assignment.flare_id, Failure::new(None, kind, message))],
    }
}

type Refusal = (FailureKind, String);

fn spec_of(assignment: &Assignment) -> Result<FlareSpec, Refusal> {
    let refuse = |message: String| (FailureKind::Instantiate, message);
    let layout = Arc::new(PackLayout::from_sizes(&assignment.pack_sizes).map_err(|e| refuse(e.to_string()))?);
    let mut inputs = vec![Bytes::new(); layout.burst_size() as usize];
    let mut given = assignment.inputs.iter();
    // Workers given the same input as the one before share its bytes.
    let mut last: Option<(&serde_json::Value, Bytes)> = None;
    for &pack_id in &assignment.packs {
        if pack_id >= layout.pack_count() {
            return Err(refuse(format!("pack {pack_id} is not in the flare's {} packs", layout.pack_count())));
        }
        for worker in layout.pack(pack_id).workers() {
            let input = given.next().ok_or_else(|| refuse("fewer inputs than workers".into()))?;
            let bytes = match &last {
                Some((value, bytes)) if *value == &**input => bytes.clone(),
                _ => Bytes::from(input.to_string()),
            };
            last = Some((&**input, bytes.clone()));
            inputs[worker as usize] = bytes;
        }
    }
    if given.next().is_some() {
        return Err(refuse("more inputs than workers".into()));
    }
    let deadline = Duration::from_millis(assignment.deadline_ms);
    let mut spec = FlareSpec::new(assignment.flare_id.clone(), layout, inputs, deadline);
    spec.limits = assignment.limits;
    Ok(spec)
}

async fn try_execute(
    runtime: &Arc<Runtime>,
    program: &Program,
    assignment: &Assignment,
    grants: Grants,
    cancel: CancellationToken,
) -> Result<Vec<PackReport>, Refusal> {
    let mut spec = spec_of(assignment)?;
    spec.cancel = cancel;
    spec.read_only_dir = grants.data;
    spec.output = grants.output;
    let refused = |e: burst_host::SpecError| (FailureKind::Instantiate, e.to_string());
    let kind = match assignment.backend {
        BackendChoice::Memory => {
            if assignment.packs.len() as u32 != spec.layout.pack_count() {
                return Err((FailureKind::Backend, "the memory backend needs every pack on one host".into()));
            }
            let result = burst_host::run_flare(runtime, program, &spec).await.map_err(refused)?;
            return Ok(vec![PackReport::from_result(&result)]);
        }
        BackendChoice::Redis => BrokerKind::Redis,
        BackendChoice::Rabbitmq => BrokerKind::RabbitMq,
    };
    let options = BrokerOptions {
        kind,
        url: assignment.broker_url.clone().unwrap_or_else(|| kind.default_url().to_owned()),
        chunk_bytes: DEFAULT_CHUNK_BYTES,
        deadline: spec.deadline,
        message_bytes: spec.limits.message_bytes,
    };
    let pack_count = spec.layout.pack_count();
    let mut backends = Vec::with_capacity(assignment.packs.len());
    for &pack_id in &assignment.packs {
        let backend = comm::connect(&options, &spec.flare_id, pack_id, pack_count)
            .await
            .map_err(|e| (FailureKind::Backend, e.to_string()))?;
        backends.push((pack_id, backend));
    }
    let spec = Arc::new(spec);
    let mut packs = JoinSet::new();
    for (pack_id, backend) in backends {
        let (runtime, program, spec) = (Arc::clone(runtime), program.clone(), Arc::clone(&spec));
        packs.spawn(async move { burst_host::run_pack(&runtime, &program, &spec, pack_id, backend).await });
    }
    let mut reports = Vec::with_capacity(assignment.packs.len());
    while let Some(joined) = packs.join_next().await {
        let result = joined.map_err(|e| (FailureKind::Trap, format!("a pack's host task failed: {e}")))?;
        reports.push(PackReport::from_result(&result.map_err(refused)?));
    }
    Ok(reports)
}
