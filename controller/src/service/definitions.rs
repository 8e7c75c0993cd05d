//! Definitions: deploy a component under a name, list, get and delete.
//!
//! A deploy is checked whole before anything is stored: the name, the
//! defaults, then the component itself (size cap, component header, the
//! `burst:bcm/worker` world, compilation). Only then are its bytes written
//! under their digest and a new version of the name recorded.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::HeaderName;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use burst_host::result::now_us;
use burst_host::{Limits, LoadError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::error::ApiError;
use super::page::{Page, PageParams};
use super::{MAX_DEADLINE_MS, MAX_UPLOAD_BYTES, Service};
use crate::api::{Defaults, Definition, ErrorBody, Version};

/// Checks a definition name: it appears in URLs and store keys, so it
/// begins with a letter or digit (`.`, `..` and the like are path segments
/// that clients rewrite).
fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_name",
            format!("name `{name}` must be 1 to 64 of A-Z a-z 0-9 . _ -, beginning with a letter or digit"),
        ))
    }
}

/// Flare defaults of a deployment, as query parameters of a raw upload
/// (or fields of a multipart one).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    /// Workers per pack when a flare does not say.
    granularity: Option<u32>,
    /// Linear memory cap of each worker, in bytes.
    memory_bytes: Option<u64>,
    /// Deadline of a flare, in milliseconds.
    deadline_ms: Option<u64>,
}

impl DeployParams {
    fn set(&mut self, field: &str, value: &str) -> Result<(), ApiError> {
        let number = |value: &str| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("bad_request", format!("`{field}` is not a number")))
        };
        match field {
            "granularity" => {
                let n = number(value)?;
                self.granularity = Some(u32::try_from(n).map_err(|_| bad_granularity(n))?);
            }
            "memory_bytes" => self.memory_bytes = Some(number(value)?),
            "deadline_ms" => self.deadline_ms = Some(number(value)?),
            other => return Err(ApiError::bad_request("bad_request", format!("unknown form field `{other}`"))),
        }
        Ok(())
    }

    fn check(self, service: &Service) -> Result<Defaults, ApiError> {
        if let Some(g) = self.granularity.filter(|&g| g == 0) {
            return Err(bad_granularity(g.into()));
        }
        if let Some(memory_bytes) = self.memory_bytes {
            service.check_limits(&Limits { memory_bytes, ..Limits::default() })?;
        }
        if let Some(ms) = self.deadline_ms {
            check_deadline(ms)?;
        }
        Ok(Defaults { granularity: self.granularity, memory_bytes: self.memory_bytes, deadline_ms: self.deadline_ms })
    }
}

impl Service {
    /// A tenant may hold at most `max_definitions` definitions of at most
    /// `max_versions` versions each.
    fn check_quota(&self, tenant: &str, definition: &Definition) -> Result<(), ApiError> {
        let limit = |code, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
        if definition.versions.len() >= self.quotas.max_versions {
            let message = format!(
                "definition `{}` has {} versions, the most a definition may have; delete it or deploy under another \
                 name",
                definition.name,
                definition.versions.len()
            );
            return Err(limit("version_limit", message));
        }
        let max = self.quotas.max_definitions;
        if definition.versions.is_empty() && self.store.count_definitions(tenant, max)? >= max {
            return Err(limit("definition_limit", format!("you have {max} definitions, the most a tenant may have")));
        }
        Ok(())
    }
}

fn bad_granularity(g: u64) -> ApiError {
    ApiError::bad_request("bad_granularity", format!("granularity {g} must be at least 1"))
}

/// Checks a deadline in milliseconds.
pub fn check_deadline(ms: u64) -> Result<(), ApiError> {
    if (1..=MAX_DEADLINE_MS).contains(&ms) {
        Ok(())
    } else {
        Err(ApiError::bad_request("bad_deadline", format!("deadline_ms {ms} must be between 1 and {MAX_DEADLINE_MS}")))
    }
}

fn load_error(error: LoadError) -> ApiError {
    match error {
        LoadError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "component_too_large", error.to_string())
        }
        LoadError::NotAComponent => ApiError::bad_request("not_a_component", error.to_string()),
        LoadError::WrongWorld(_) => ApiError::bad_request("wrong_world", error.to_string()),
        LoadError::ForbiddenImport(_) => ApiError::bad_request("forbidden_import", error.to_string()),
        LoadError::Compile(_) => ApiError::bad_request("invalid_component", error.to_string()),
        LoadError::Cache { .. } => ApiError::internal(error),
    }
}

fn too_large() -> ApiError {
    let message = format!("the upload is above the maximum of {MAX_UPLOAD_BYTES} bytes");
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "component_too_large", message)
}

/// The component and defaults of an upload, raw or multipart.
async fn read_upload(
    service: &Arc<Service>,
    params: DeployParams,
    request: Request,
) -> Result<(Bytes, DeployParams), ApiError> {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let body = Bytes::from_request(request, service).await.map_err(|_| too_large())?;
        return Ok((body, params));
    }
    let mut form = Multipart::from_request(request, service)
        .await
        .map_err(|e| ApiError::bad_request("bad_request", format!("multipart: {e}")))?;
    let (mut component, mut params) = (None, params);
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("bad_request", format!("multipart: {e}"))
        }
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "component" {
            component = Some(field.bytes().await.map_err(bad)?);
        } else {
            let value = field.text().await.map_err(bad)?;
            params.set(&name, &value)?;
        }
    }
    let component = component.ok_or_else(|| ApiError::bad_request("bad_request", "no `component` field"))?;
    Ok((component, params))
}

/// Deploys a component under a name; a name deployed again gets a new
/// version, unless the component and defaults are those of its current
/// version (then nothing changes and the answer is 200).
#[utoipa::path(
    post,
    path = "/v1/definitions/{name}",
    tag = "definitions",
    params(("name" = String, Path, description = "1 to 64 of A-Z a-z 0-9 . _ -, beginning with a letter or digit"), DeployParams),
    request_body(
        content = Vec<u8>,
        content_type = "application/octet-stream",
        description = "The component's bytes; or multipart/form-data with a `component` file and the defaults as \
                       fields"
    ),
    responses(
        (status = 201, description = "Deployed: a new version", body = Definition),
        (status = 200, description = "The same component and defaults as the current version: unchanged", body = Definition),
        (status = 400, description = "Bad name, defaults or component", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "The tenant's definitions or the definition's versions are at their cap \
                                    (`definition_limit`, `version_limit`)", body = ErrorBody),
        (status = 413, description = "Component above the size cap", body = ErrorBody),
    )
)]
pub async fn deploy(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    params: Result<Query<DeployParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<Definition>), ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    check_name(&name)?;
    let location = [(LOCATION, format!("/v1/definitions/{name}"))];
    let Query(params) = params.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    let (wasm, params) = read_upload(&service, params, request).await?;
    let defaults = params.check(&service)?;
    let size = wasm.len() as u64;
    let digest = hex::encode(Sha256::digest(&wasm));
    let cached = service.store.tenant_has_component(&tenant, &digest)?;
    service.programs.load(wasm.clone(), cached).await.map_err(load_error)?;
    let _definitions = service.definitions.lock().await;
    service.store.put_component(&digest, &wasm)?;
    let mut definition = service.store.definition(&tenant, &name)?.unwrap_or(Definition { name, versions: Vec::new() });
    if definition.current().is_some_and(|v| v.digest == digest && v.defaults == defaults) {
        // A retried or repeated deploy: nothing new to record.
        return Ok((StatusCode::OK, location, Json(definition)));
    }
    service.check_quota(&tenant, &definition)?;
    let version = definition.current().map_or(1, |v| v.version + 1);
    definition.versions.push(Version { version, digest, size, created_us: now_us(), defaults });
    service.store.put_definition(&tenant, &definition)?;
    tracing::info!(tenant, name = definition.name, version, "deployed");
    Ok((StatusCode::CREATED, location, Json(definition)))
}

/// The caller's definitions by name, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/definitions",
    tag = "definitions",
    params(PageParams),
    responses(
        (status = 200, description = "A page of the tenant's definitions; `Link: rel=\"next\"` when more follow",
         body = Vec<Definition>),
        (status = 400, description = "Bad page parameters", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn list_definitions(
    State(service): State<Arc<Service>>,
    query: Result<Query<PageParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let page = Page::of(query)?;
    let definitions = service.store.definitions(&tenant, page.after.as_deref(), page.limit + 1)?;
    Ok(page.answer("/v1/definitions", definitions, |definition| &definition.name))
}

/// One definition with every version.
#[utoipa::path(
    get,
    path = "/v1/definitions/{name}",
    tag = "definitions",
    params(("name" = String, Path, description = "The definition")),
    responses(
        (status = 200, description = "The definition", body = Definition),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such definition for this tenant", body = ErrorBody),
    )
)]
pub async fn get_definition(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Definition>, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let definition = service.store.definition(&tenant, &name)?;
    Ok(Json(definition.ok_or_else(|| ApiError::not_found(format_args!("definition `{name}`")))?))
}

/// Deletes a definition and every version of it, unless a queued or
/// running flare uses it.
#[utoipa::path(
    delete,
    path = "/v1/definitions/{name}",
    tag = "definitions",
    params(("name" = String, Path, description = "The definition")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such definition for this tenant", body = ErrorBody),
        (status = 409, description = "Queued or running flares use it (`definition_in_use`)", body = ErrorBody),
    )
)]
pub async fn delete_definition(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let tenant = service.auth.tenant(&headers)?;
    let _definitions = service.definitions.lock().await;
    let Some(definition) = service.store.definition(&tenant, &name)? else {
        return Err(ApiError::not_found(format_args!("definition `{name}`")));
    };
    let live = service.cluster.live_flares_of(&tenant, &name);
    if live > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "definition_in_use",
            format!("definition `{name}` has {live} queued or running flares; delete it once they have ended"),
        ));
    }
    service.store.delete_definition(&tenant, &name)?;
    for version in &definition.versions {
        service.programs.forget(&version.digest);
    }
    Ok(StatusCode::NO_CONTENT)
}
