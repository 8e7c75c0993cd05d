//! The HTTP client of the CLI subcommands and the host daemon.
//!
//! Errors the controller answers keep their stable `code`, so callers can
//! tell `unknown_host` from `not_found`; every request has a timeout.

use std::time::Duration;

use clap::Args;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;

/// Longest a single request may take; long polls are shorter than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the controller is and how to authenticate.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// URL of the controller.
    #[arg(long, env = "BURST_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token of your tenant (not needed when the controller has no tokens).
    #[arg(long, env = "BURST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The controller answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The stable error code.
        code: String,
        /// The controller's explanation.
        message: String,
    },
    /// The controller could not be reached or its answer not read.
    #[error("talking to the controller at {url}: {source}")]
    Http {
        /// The controller's URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
}

/// A client of one controller.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    /// A client of the controller at `connection.url`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, url: connection.url.trim_end_matches('/').to_owned(), token: connection.token.clone() })
    }

    /// The same client presenting `token` instead.
    pub fn with_token(&self, token: String) -> Self {
        Self { token: Some(token), ..self.clone() }
    }

    /// A request to `path` (which starts with `/`), authenticated.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a non-success answer becomes [`ClientError::Api`].
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let http = |source| ClientError::Http { url: self.url.clone(), source };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(http)?;
        let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
            code: "http".into(),
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        });
        Err(ClientError::Api { status, code: error.code, message: error.message })
    }

    /// Sends a request and decodes its JSON answer.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        response.json().await.map_err(|source| ClientError::Http { url: self.url.clone(), source })
    }

    /// `GET path` as JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body, answered with JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }
}

/// A current-thread async runtime for a CLI subcommand.
///
/// # Errors
/// When tokio cannot start.
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(future))
}
