//! A flare's output files: listed and served to its tenant once it has
//! finished, and received from the remote hosts that ran its packs.
//!
//! A path is one URL segment, percent-encoded (`dir%2Fpart-00001`): every
//! file is opened through `cap-std` under the flare's directory, so no
//! path in a request reaches outside it. Remote hosts upload what their
//! workers wrote before they report; every upload is charged to the
//! flare's one quota, shared with the embedded host's writes.

use std::io::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures_util::StreamExt as _;

use super::Service;
use super::error::ApiError;
use super::flares::owned_flare;
use crate::api::{ErrorBody, Outputs};
use crate::outputs::{self, OutputError};

impl From<OutputError> for ApiError {
    fn from(error: OutputError) -> Self {
        match error {
            OutputError::BadPath(_) => ApiError::bad_request("bad_path", error.to_string()),
            OutputError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string()),
            OutputError::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_files", error.to_string()),
            OutputError::Io { .. } => ApiError::internal(error),
        }
    }
}

/// The output directory of a finished flare of the caller's.
fn finished_outputs(service: &Service, headers: &HeaderMap, flare_id: &str) -> Result<std::path::PathBuf, ApiError> {
    let record = owned_flare(service, headers, flare_id)?;
    if record.doc.output_quota_bytes.is_none() {
        let message = format!("flare `{flare_id}` has no output directory (ask for one with `output: true`)");
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_outputs", message));
    }
    if !record.doc.status.is_final() {
        let message = format!("flare `{flare_id}` is {}", record.doc.status.as_str());
        return Err(ApiError::new(StatusCode::CONFLICT, "not_finished", message));
    }
    Ok(outputs::flare_dir(&service.store.outputs_dir(), flare_id)?)
}

/// The files a finished flare's workers wrote to `/out`.
#[utoipa::path(
    get,
    path = "/v1/flares/{flare_id}/outputs",
    tag = "flares",
    params(("flare_id" = String, Path, description = "The flare")),
    responses(
        (status = 200, description = "Its output files", body = Outputs),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such flare for this tenant, or it has no outputs", body = ErrorBody),
        (status = 409, description = "The flare has not finished", body = ErrorBody),
    )
)]
pub async fn list_outputs(
    State(service): State<Arc<Service>>,
    Path(flare_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Outputs>, ApiError> {
    let dir = finished_outputs(&service, &headers, &flare_id)?;
    let listed = tokio::task::spawn_blocking(move || outputs::list(&dir)).await.map_err(ApiError::internal)?;
    Ok(Json(listed?))
}

/// One output file of a finished flare, streamed.
#[utoipa::path(
    get,
    path = "/v1/flares/{flare_id}/outputs/{path}",
    tag = "flares",
    params(
        ("flare_id" = String, Path, description = "The flare"),
        ("path" = String, Path, description = "The file's path under `/out`, percent-encoded as one segment"),
    ),
    responses(
        (status = 200, description = "The file's bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "Not a path under `/out`", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such flare, output directory or file", body = ErrorBody),
        (status = 409, description = "The flare has not finished", body = ErrorBody),
    )
)]
pub async fn get_output(
    State(service): State<Arc<Service>>,
    Path((flare_id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let dir = finished_outputs(&service, &headers, &flare_id)?;
    let file = tokio::task::spawn_blocking(move || outputs::open(&dir, &path)).await.map_err(ApiError::internal)??;
    let bytes = file.metadata().map_err(ApiError::internal)?.len();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(CONTENT_TYPE, "application/octet-stream".to_owned()), (CONTENT_LENGTH, bytes.to_string())],
        Body::from_stream(stream),
    ))
}

/// A remote host's upload of one file its workers wrote to `/out`, before
/// it reports; charged to the flare's quota.
#[utoipa::path(
    put,
    path = "/v1/hosts/{host_id}/outputs/{flare_id}/{path}",
    security(("host" = [])),
    tag = "cluster",
    params(
        ("host_id" = String, Path, description = "The host"),
        ("flare_id" = String, Path, description = "The flare"),
        ("path" = String, Path, description = "The file's path under `/out`, percent-encoded as one segment"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Not a path under `/out`", body = ErrorBody),
        (status = 401, description = "Not this host's credential", body = ErrorBody),
        (status = 404, description = "Unknown or down host", body = ErrorBody),
        (status = 409, description = "The flare has no output directory or no unreported packs on this host",
         body = ErrorBody),
        (status = 413, description = "Over the flare's output quota (`output_quota`)", body = ErrorBody),
    )
)]
pub async fn upload_output(
    State(service): State<Arc<Service>>,
    Path((host_id, flare_id, path)): Path<(String, String, String)>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // The host's own credential was checked before the request got here.
    let Some(output) = service.cluster.output_for(&host_id, &flare_id) else {
        let message = format!("flare `{flare_id}` has no output directory waiting for host `{host_id}`");
        return Err(ApiError::new(StatusCode::CONFLICT, "not_assigned", message));
    };
    let (dir, target) = (output.path.clone(), path.clone());
    let mut file =
        tokio::task::spawn_blocking(move || outputs::create(&dir, &target)).await.map_err(ApiError::internal)??;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    let failed = loop {
        let chunk = match stream.next().await {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => break Some(ApiError::bad_request("bad_body", error.to_string())),
        };
        if !output.quota.try_charge(chunk.len() as u64) {
            let message = format!("the flare's output quota of {} bytes is used up", output.quota.limit());
            break Some(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "output_quota", message));
        }
        written += chunk.len() as u64;
        // Small writes to a local file: not worth a blocking task each.
        if let Err(error) = file.write_all(&chunk) {
            break Some(ApiError::internal(error));
        }
    };
    if let Some(error) = failed {
        // Nothing half-uploaded stays: the host reports the failure.
        drop(file);
        let _ = outputs::remove(&output.path, &path);
        output.quota.refund(written);
        tracing::warn!(flare_id, host_id, path, written, "an output upload was refused");
        return Err(error);
    }
    Ok(StatusCode::NO_CONTENT)
}
