//! Flares: start one, read its state and results, list them.
//!
//! A request is checked whole (definition, inputs, packing, backend,
//! granularity, deadline, limits) before admission, and admission stores
//! the flare only when it starts or queues, so a refused request leaves
//! nothing behind.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use burst_host::layout::MAX_BURST_SIZE;
use burst_host::limits::{DEFAULT_OUTPUT_QUOTA, MAX_OUTPUT_QUOTA};
use burst_host::result::now_us;
use burst_host::{Failure, FailureKind, Limits};
use serde_json::{Map, Value};

use super::Service;
use super::admission::{Packing, Shape};
use super::cluster::{CancelError, FLARE_OUTPUTS_DATASET, Job, SubmitError};
use super::definitions::check_deadline;
use super::error::ApiError;
use super::idempotency;
use super::page::{Page, PageParams};
use super::store::FlareRecord;
use crate::api::{BackendChoice, Defaults, ErrorBody, FlareAccepted, FlareDoc, FlareRequest, FlareStatus};
use crate::report::{PackReport, ResultDoc};

/// Deadline of a flare whose request and deployment give none.
pub const DEFAULT_DEADLINE_MS: u64 = 300_000;

/// How much longer than its deadline a `wait` request waits (a queued
/// flare's deadline starts only when it starts); then it answers 202.
const WAIT_GRACE: Duration = Duration::from_secs(60);

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// One input per worker; a `burst_size` flare's workers share one value,
/// so a request's size, not its burst size, bounds what it holds.
fn inputs_of(request: &mut FlareRequest) -> Result<Vec<Arc<Value>>, ApiError> {
    match (request.inputs.take(), request.burst_size) {
        (Some(_), Some(_)) => Err(bad("bad_inputs", "give either `inputs` or `burst_size`, not both")),
        (Some(_), None) if request.input.is_some() => {
            Err(bad("bad_inputs", "`input` goes with `burst_size`; with `inputs` each worker has its own"))
        }
        (Some(inputs), None) if inputs.is_empty() => Err(bad("bad_inputs", "`inputs` must not be empty")),
        (Some(inputs), None) if inputs.len() > MAX_BURST_SIZE as usize => Err(bad(
            "bad_inputs",
            format!("`inputs` holds {} values, above the maximum burst size of {MAX_BURST_SIZE}", inputs.len()),
        )),
        (Some(inputs), None) => Ok(inputs.into_iter().map(Arc::new).collect()),
        (None, Some(n)) if n == 0 || n > MAX_BURST_SIZE => {
            Err(bad("bad_burst_size", format!("burst_size {n} must be between 1 and {MAX_BURST_SIZE}")))
        }
        (None, Some(n)) => {
            // Deliberately one value for every worker.
            let shared = Arc::new(request.input.take().unwrap_or(Value::Null));
            Ok(std::iter::repeat_n(shared, n as usize).collect())
        }
        (None, None) => Err(bad("bad_inputs", "give `inputs` (one per worker) or `burst_size` and `input`")),
    }
}

/// The deployment's limits with the request's fields over them.
fn limits_of(defaults: &Defaults, overrides: Option<Map<String, Value>>) -> Result<Limits, ApiError> {
    let mut limits = Limits::default();
    if let Some(memory_bytes) = defaults.memory_bytes {
        limits.memory_bytes = memory_bytes;
    }
    let Some(overrides) = overrides else { return Ok(limits) };
    let mut value = serde_json::to_value(limits).map_err(ApiError::internal)?;
    if let Value::Object(fields) = &mut value {
        fields.extend(overrides);
    }
    serde_json::from_value(value).map_err(|e| bad("bad_limits", format!("limits: {e}")))
}

fn backend_of(name: Option<&str>) -> Result<BackendChoice, ApiError> {
    match name.unwrap_or("memory") {
        "memory" => Ok(BackendChoice::Memory),
        "redis" => Ok(BackendChoice::Redis),
        "rabbitmq" => Ok(BackendChoice::Rabbitmq),
        other => Err(bad("bad_backend", format!("unknown backend `{other}` (use memory, redis or rabbitmq)"))),
    }
}

/// Checks a request and turns it into a job for admission.
fn job_of(service: &Service, tenant: String, mut request: FlareRequest) -> Result<Job, ApiError> {
    let name = request.definition.clone();
    let definition = service.store.definition(&tenant, &name)?;
    let definition = definition.ok_or_else(|| ApiError::not_found(format_args!("definition `{name}`")))?;
    let version = match request.version {
        Some(v) => definition.versions.iter().find(|version| version.version == v),
        None => definition.current(),
    };
    let version = version.ok_or_else(|| ApiError::not_found(format_args!("version of definition `{name}`")))?;
    let inputs = inputs_of(&mut request)?;
    let n = inputs.len() as u32;
    let packing: Packing =
        request.packing.as_deref().map_or(Ok(Packing::Homogeneous), str::parse).map_err(|m| bad("bad_packing", m))?;
    let backend = backend_of(request.backend.as_deref())?;
    let granularity = match request.granularity {
        Some(g) => g,
        None => version.defaults.granularity.map_or(n, |g| g.min(n)),
    };
    if granularity == 0 || granularity > n {
        return Err(bad(
            "bad_granularity",
            format!("granularity {granularity} must be between 1 and the burst size {n}"),
        ));
    }
    let deadline_ms = request.deadline_ms.or(version.defaults.deadline_ms).unwrap_or(DEFAULT_DEADLINE_MS);
    check_deadline(deadline_ms)?;
    let limits = limits_of(&version.defaults, request.limits.take())?;
    service.check_limits(&limits)?;
    let readable = |name: &str| match name.strip_prefix(FLARE_OUTPUTS_DATASET) {
        // Another flare's outputs: one of the tenant's own, finished, with
        // an output directory.
        Some(flare_id) => service
            .cluster
            .flare(flare_id)
            .ok()
            .flatten()
            .is_some_and(|r| r.tenant == tenant && r.doc.status.is_final() && r.doc.output_quota_bytes.is_some()),
        None => service.dataset_grants.allows(&tenant, name) && service.cluster.has_dataset(name),
    };
    if let Some(name) = &request.dataset
        && !readable(name)
    {
        // A dataset the tenant may not read looks like one that does not
        // exist: its name is not confirmed to others.
        let message = format!(
            "no dataset `{name}` (the operator names datasets with `--dataset NAME=DIR`; `flare/ID` reads the \
             outputs of a finished flare of yours)"
        );
        return Err(bad("unknown_dataset", message));
    }
    let output_quota = match (request.output, request.output_quota_bytes) {
        (false, Some(_)) => return Err(bad("bad_output", "`output_quota_bytes` goes with `output: true`")),
        (false, None) => None,
        (true, quota) => {
            let quota = quota.unwrap_or(DEFAULT_OUTPUT_QUOTA);
            if !(1..=MAX_OUTPUT_QUOTA).contains(&quota) {
                let message = format!("output_quota_bytes {quota} must be between 1 and {MAX_OUTPUT_QUOTA}");
                return Err(bad("bad_output", message));
            }
            Some(quota)
        }
    };
    let doc = FlareDoc {
        flare_id: service.cluster.new_flare_id(),
        definition: name,
        version: version.version,
        status: FlareStatus::Queued,
        burst_size: n,
        granularity,
        packing: packing.as_str().into(),
        backend: backend.as_str().into(),
        deadline_ms,
        workers_started: 0,
        workers_finished: 0,
        created_us: now_us(),
        started_us: None,
        finished_us: None,
        failure: None,
        placement: None,
        dataset: request.dataset.clone(),
        output_quota_bytes: output_quota,
    };
    Ok(Job {
        record: FlareRecord { tenant, doc },
        shape: Shape { burst_size: n, granularity, packing, one_host: backend == BackendChoice::Memory },
        digest: version.digest.clone(),
        inputs,
        deadline_ms,
        limits,
        backend,
        dataset: request.dataset,
        output_quota,
    })
}

/// Starts a flare of a deployed definition.
#[utoipa::path(
    post,
    path = "/v1/flares",
    tag = "flares",
    request_body = FlareRequest,
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "1 to 255 visible ASCII characters: a retried request with the key of an earlier one (within \
                       24 hours) answers the flare that one started instead of starting another"
    )),
    responses(
        (status = 200, description = "With `wait`: the finished flare's results", body = ResultDoc),
        (status = 202, description = "Accepted: running or queued; `Location` names the flare", body = FlareAccepted),
        (status = 400, description = "Bad request", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such definition for this tenant", body = ErrorBody),
        (status = 413, description = "The body is above 1 MiB (`body_too_large`)", body = ErrorBody),
        (status = 422, description = "The flare can never fit the cluster", body = ErrorBody),
        (status = 429, description = "The tenant's share of the queue is full (`tenant_queue_full`)", body = ErrorBody),
        (status = 503, description = "The queue is full", body = ErrorBody),
    )
)]
pub async fn create_flare(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let key = idempotency::key_of(&headers)?;
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_request" };
        ApiError::new(e.status(), code, e.body_text())
    })?;
    let request: FlareRequest = serde_json::from_slice(&body).map_err(|e| bad("invalid_json", e.to_string()))?;
    let wait = request.wait;
    let (flare_id, deadline_ms, mut watch) = {
        // The definition cannot be deleted between resolving its version
        // and admitting the flare (which makes it in use); a retry with the
        // same key waits for the first request to be admitted.
        let _definitions = service.definitions.lock().await;
        // A retried request: the flare the first one started, unless it has
        // been pruned since (then the key starts a new one).
        let earlier = match key.as_deref().and_then(|key| service.idempotency.flare(&tenant, key)) {
            Some(flare_id) => service.cluster.flare(&flare_id)?.map(|record| (flare_id, record)),
            None => None,
        };
        match earlier {
            Some((flare_id, record)) => {
                let watch = service.cluster.watch(&flare_id);
                (flare_id, record.doc.deadline_ms, watch)
            }
            None => {
                let job = job_of(&service, tenant.clone(), request)?;
                let (flare_id, deadline_ms) = (job.record.doc.flare_id.clone(), job.deadline_ms);
                let (_, watch) = service.cluster.submit(job).map_err(submit_error)?;
                if let Some(key) = &key {
                    service.idempotency.remember(&tenant, key, &flare_id);
                }
                (flare_id, deadline_ms, Some(watch))
            }
        }
    };
    if wait && let Some(watch) = &mut watch {
        let limit = Duration::from_millis(deadline_ms) + WAIT_GRACE;
        // A closed watch means the flare has already finished.
        let _ = tokio::time::timeout(limit, watch.wait_for(|s| s.is_final())).await;
    }
    let record = service.cluster.flare(&flare_id)?.ok_or_else(|| ApiError::internal("a new flare vanished"))?;
    if wait && record.doc.status.is_final() {
        return Ok(Json(results_of(&service, &record)?).into_response());
    }
    let location = [(LOCATION, format!("/v1/flares/{flare_id}"))];
    Ok((StatusCode::ACCEPTED, location, Json(FlareAccepted { flare_id, status: record.doc.status })).into_response())
}

fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Never(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "never_fits", error.to_string()),
        SubmitError::QueueFull(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", error.to_string()),
        SubmitError::TenantQueueFull(_) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "tenant_queue_full", error.to_string())
        }
        SubmitError::Store(error) => ApiError::internal(error),
    }
}

fn results_of(service: &Service, record: &FlareRecord) -> Result<ResultDoc, ApiError> {
    let doc = &record.doc;
    if let Some(result) = service.store.result(&doc.flare_id)? {
        return Ok(result);
    }
    // Failed without results: the controller stopped while it ran.
    let failure =
        doc.failure.clone().unwrap_or_else(|| Failure::new(None, FailureKind::Backend, "the flare has no results"));
    let mut result = ResultDoc::new(
        &doc.flare_id,
        doc.burst_size,
        doc.granularity,
        vec![PackReport::failed(&doc.flare_id, failure)],
    );
    result.placement = doc.placement.clone();
    Ok(result)
}

pub(super) fn owned_flare(service: &Service, headers: &HeaderMap, flare_id: &str) -> Result<FlareRecord, ApiError> {
    let tenant = service.auth.tenant(headers)?;
    let record = service.cluster.flare(flare_id)?.filter(|r| r.tenant == tenant);
    record.ok_or_else(|| ApiError::not_found(format_args!("flare `{flare_id}`")))
}

/// Cancels a queued or running flare: it fails at once with `cancelled`,
/// and its packs are stopped wherever they run.
#[utoipa::path(
    delete,
    path = "/v1/flares/{flare_id}",
    tag = "flares",
    params(("flare_id" = String, Path, description = "The flare")),
    responses(
        (status = 200, description = "Cancelled: its final state", body = FlareDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such flare for this tenant", body = ErrorBody),
        (status = 409, description = "It has already finished (`already_finished`)", body = ErrorBody),
    )
)]
pub async fn cancel_flare(
    State(service): State<Arc<Service>>,
    Path(flare_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<FlareDoc>, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    match service.cluster.cancel(&tenant, &flare_id) {
        Ok(record) => {
            tracing::info!(tenant, flare_id, "flare cancelled");
            Ok(Json(record.doc))
        }
        Err(CancelError::NotFound(_)) => Err(ApiError::not_found(format_args!("flare `{flare_id}`"))),
        Err(error @ CancelError::Finished(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "already_finished", error.to_string()))
        }
        Err(CancelError::Store(error)) => Err(ApiError::internal(error)),
    }
}

/// The state of a flare, with progress counts while it runs.
#[utoipa::path(
    get,
    path = "/v1/flares/{flare_id}",
    tag = "flares",
    params(("flare_id" = String, Path, description = "The flare")),
    responses(
        (status = 200, description = "Its state", body = FlareDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such flare for this tenant", body = ErrorBody),
    )
)]
pub async fn get_flare(
    State(service): State<Arc<Service>>,
    Path(flare_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<FlareDoc>, ApiError> {
    Ok(Json(owned_flare(&service, &headers, &flare_id)?.doc))
}

/// The results of a finished flare.
#[utoipa::path(
    get,
    path = "/v1/flares/{flare_id}/results",
    tag = "flares",
    params(("flare_id" = String, Path, description = "The flare")),
    responses(
        (status = 200, description = "Its results", body = ResultDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such flare for this tenant", body = ErrorBody),
        (status = 409, description = "The flare has not finished", body = ErrorBody),
    )
)]
pub async fn get_results(
    State(service): State<Arc<Service>>,
    Path(flare_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ResultDoc>, ApiError> {
    let record = owned_flare(&service, &headers, &flare_id)?;
    if !record.doc.status.is_final() {
        let message = format!("flare `{flare_id}` is {}", record.doc.status.as_str());
        return Err(ApiError::new(StatusCode::CONFLICT, "not_finished", message));
    }
    Ok(Json(results_of(&service, &record)?))
}

/// The caller's flares still kept, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/flares",
    tag = "flares",
    params(PageParams),
    responses(
        (status = 200, description = "A page of the tenant's flares; `Link: rel=\"next\"` when more follow",
         body = Vec<FlareDoc>),
        (status = 400, description = "Bad page parameters", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn list_flares(
    State(service): State<Arc<Service>>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let page = Page::of(query)?;
    let flares = service.cluster.flares(&tenant, page.after.as_deref(), page.limit + 1)?;
    Ok(page.answer("/v1/flares", flares, |flare| &flare.flare_id))
}
