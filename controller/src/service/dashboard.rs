//! The dashboard: a page and its modules, embedded in the binary and
//! served at `/` and `/dashboard/FILE`.
//!
//! They are served without a token because they hold no data: the page
//! asks for a token, keeps it in the browser's session storage and sends it
//! with every API request, so a tenant sees only what the API shows it.
//! Every answer carries a Content-Security-Policy that lets the page load
//! and reach nothing but this server.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// What the page may load and reach: only this origin; no inline script,
/// no framing.
pub const CSP: &str =
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page: name, content type, contents.
const FILES: [(&str, &str, &str); 6] = [
    ("index.html", "text/html; charset=utf-8", include_str!("../../dashboard/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../dashboard/style.css")),
    ("app.js", JS, include_str!("../../dashboard/app.js")),
    ("api.js", JS, include_str!("../../dashboard/api.js")),
    ("timeline.js", JS, include_str!("../../dashboard/timeline.js")),
    ("matrix.js", JS, include_str!("../../dashboard/matrix.js")),
];

/// `GET /`: the page.
pub async fn index() -> Response {
    file("index.html").unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET /dashboard/FILE`: one of the page's files.
pub async fn asset(Path(name): Path<String>) -> Response {
    file(&name).unwrap_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_route", format!("the dashboard has no file `{name}`")).into_response()
    })
}

fn file(name: &str) -> Option<Response> {
    let (_, content_type, contents) = FILES.iter().find(|(file, ..)| *file == name)?;
    let headers = [
        (CONTENT_TYPE, *content_type),
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // A new binary may serve new files under the same names.
        (CACHE_CONTROL, "no-cache"),
    ];
    Some((headers, *contents).into_response())
}
