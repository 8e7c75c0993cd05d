//! Pages of a list: `?limit=&after=`, and a `Link` to the next page.
//!
//! Lists are in key order (definitions by name, flares by id, which is
//! creation order); a page holds up to `limit` items after the key `after`,
//! and a full page carries `Link: <…?limit=N&after=LAST>; rel="next"`.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::error::ApiError;

/// Most items on one page.
pub const MAX_PAGE: usize = 1000;

/// Items on a page unless `limit` says.
pub const DEFAULT_PAGE: usize = 100;

/// Which page of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Items on the page, 1 to 1000 (100 unless given).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The page starts after this item: the last name or id of the page
    /// before (its `Link: rel="next"` says so).
    after: Option<String>,
}

/// A checked page request.
pub struct Page {
    /// Items on the page.
    pub limit: usize,
    /// The key the page starts after.
    pub after: Option<String>,
}

impl Page {
    /// The page a query asks for.
    ///
    /// # Errors
    /// 400 `bad_request` for a malformed query or a limit out of range.
    pub fn of(query: Result<Query<PageParams>, QueryRejection>) -> Result<Self, ApiError> {
        let Query(params) = query.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
        let limit = params.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request("bad_request", format!("limit {limit} must be 1 to {MAX_PAGE}")));
        }
        Ok(Self { limit, after: params.after })
    }

    /// The answer for `items` of the list at `path` (fetched with one item
    /// more than the page holds, to know whether another page follows).
    pub fn answer<T: Serialize>(&self, path: &str, mut items: Vec<T>, key: impl Fn(&T) -> &str) -> Response {
        let more = items.len() > self.limit;
        items.truncate(self.limit);
        let next = items.last().filter(|_| more).map(|last| {
            // Keys are names and ids: letters, digits, `.`, `_`, `-`.
            format!("<{path}?limit={}&after={}>; rel=\"next\"", self.limit, key(last))
        });
        let mut response = Json(items).into_response();
        if let Some(link) = next.and_then(|link| HeaderValue::from_str(&link).ok()) {
            response.headers_mut().insert(LINK, link);
        }
        response
    }
}
