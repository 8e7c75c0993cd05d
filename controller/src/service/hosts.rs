//! Health, and the routes host daemons use (all behind the cluster token):
//! register, poll for packs (the poll is the heartbeat), report results,
//! fetch a component by digest.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Service;
use super::cluster::ReportError;
use super::error::ApiError;
use crate::api::{ErrorBody, Health, HostReport, Register, Registered, Work};

/// Longest a poll is held open before it answers with no work.
const MAX_POLL: Duration = Duration::from_secs(30);

/// Most slots one host may offer: bounded by what one process can pool.
const MAX_HOST_SLOTS: u32 = 20_000;

/// Health and capacity: hosts, slots, free slots, queued and running flares.
#[utoipa::path(
    get,
    path = "/health",
    security(()),
    tag = "cluster",
    responses((status = 200, description = "The controller answers", body = Health))
)]
pub async fn health(State(service): State<Arc<Service>>) -> Json<Health> {
    Json(service.cluster.health())
}

/// Registers a host daemon.
#[utoipa::path(
    post,
    path = "/v1/hosts",
    security(("cluster" = [])),
    tag = "cluster",
    request_body = Register,
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "Bad registration", body = ErrorBody),
        (status = 401, description = "No cluster token", body = ErrorBody),
    )
)]
pub async fn register(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    service.auth.cluster(&headers)?;
    let register: Register =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    if !(1..=MAX_HOST_SLOTS).contains(&register.slots) {
        let message = format!("slots {} must be between 1 and {MAX_HOST_SLOTS}", register.slots);
        return Err(ApiError::bad_request("bad_slots", message));
    }
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(ApiError::internal)?;
    let host_token = hex::encode(secret);
    for name in &register.datasets {
        crate::datasets::check_name(name).map_err(|m| ApiError::bad_request("bad_dataset", m))?;
    }
    let datasets = register.datasets.into_iter().collect();
    let host_id = service.cluster.register(register.name, register.slots, datasets, host_token.clone());
    let timeout_ms = service.host_timeout.as_millis() as u64;
    Ok((StatusCode::CREATED, Json(Registered { host_id, host_token, timeout_ms })))
}

/// How long a poll may wait for work.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollParams {
    /// Milliseconds to wait for work before answering an empty list
    /// (at most 30 000).
    #[serde(default)]
    wait_ms: u64,
}

pub(super) fn unknown_host(host_id: &str) -> ApiError {
    let message = format!("host `{host_id}` is not registered or was marked down; register again");
    ApiError::new(StatusCode::NOT_FOUND, "unknown_host", message)
}

/// A host's poll for packs to run and packs to stop; also its heartbeat.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host_id}/work",
    security(("host" = [])),
    tag = "cluster",
    params(("host_id" = String, Path, description = "The host"), PollParams),
    responses(
        (status = 200, description = "Packs to run and flares to stop (maybe none)", body = Work),
        (status = 401, description = "Not this host's credential", body = ErrorBody),
        (status = 404, description = "Unknown or down host", body = ErrorBody),
    )
)]
pub async fn poll(
    State(service): State<Arc<Service>>,
    Path(host_id): Path<String>,
    Query(params): Query<PollParams>,
) -> Result<Json<Work>, ApiError> {
    // The host's own credential was checked before the request got here.
    let wait = Duration::from_millis(params.wait_ms).min(MAX_POLL);
    let work = service.cluster.poll(&host_id, wait).await.map_err(|_| unknown_host(&host_id))?;
    Ok(Json(work))
}

/// A host's results for the packs of a flare; frees their slots.
#[utoipa::path(
    post,
    path = "/v1/hosts/{host_id}/reports",
    security(("host" = [])),
    tag = "cluster",
    params(("host_id" = String, Path, description = "The host")),
    request_body = HostReport,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Malformed report, or not exactly the host's workers", body = ErrorBody),
        (status = 401, description = "Not this host's credential", body = ErrorBody),
        (status = 404, description = "Unknown or down host", body = ErrorBody),
        (status = 409, description = "The flare has no packs on this host", body = ErrorBody),
    )
)]
pub async fn report(
    State(service): State<Arc<Service>>,
    Path(host_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // The host's own credential was checked before the request got here.
    let report: HostReport =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    service.cluster.report(&host_id, &report.flare_id, report.reports).map_err(|error| match error {
        ReportError::NotAssigned => ApiError::new(StatusCode::CONFLICT, "not_assigned", error.to_string()),
        ReportError::Workers(_) => ApiError::bad_request("bad_report", error.to_string()),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bytes of a deployed component, by digest.
#[utoipa::path(
    get,
    path = "/v1/components/{digest}",
    security(("cluster" = [])),
    tag = "cluster",
    params(("digest" = String, Path, description = "Hex SHA-256 of the component")),
    responses(
        (status = 200, description = "The component", body = Vec<u8>, content_type = "application/wasm"),
        (status = 401, description = "No cluster token", body = ErrorBody),
        (status = 404, description = "No such component", body = ErrorBody),
    )
)]
pub async fn component(
    State(service): State<Arc<Service>>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    service.auth.cluster(&headers)?;
    // The digest names a file: only hex gets near the filesystem.
    let is_digest = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    let wasm = if is_digest { service.store.component(&digest)? } else { None };
    let wasm = wasm.ok_or_else(|| ApiError::not_found(format_args!("component `{digest}`")))?;
    Ok(([(CONTENT_TYPE, "application/wasm")], wasm))
}
