//! `burst serve`: the controller, an axum service with an embedded host.
//!
//! API routes are declared once with their OpenAPI annotations
//! (`utoipa-axum`), so `/openapi.json` lists exactly the API routes served;
//! the [`dashboard`]'s page and modules are served beside them. Handlers
//! live by resource: [`definitions`], [`flares`] (and their live
//! [`events`]), [`hosts`] (health and the host-daemon routes). State: the [`store::Store`] that
//! survives restarts, the compiled [`programs::Programs`], and the
//! [`cluster::Cluster`] of hosts, queue and live flares; a maintenance task
//! marks silent hosts down and prunes results past their retention.

mod admission;
mod auth;
mod cluster;
mod dashboard;
mod definitions;
mod error;
mod events;
mod flares;
mod hosts;
mod idempotency;
mod listen;
mod outputs;
mod page;
mod programs;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use burst_host::result::now_us;
use burst_host::{CancellationToken, Failure, FailureKind, LimitError, Limits, Runtime, RuntimeConfig};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::Auth;
use self::cluster::{Cluster, ClusterConfig};
use self::error::ApiError;
use self::programs::Programs;
use self::store::Store;
use crate::datasets::{DatasetGrants, Datasets};

/// Longest deadline a flare may ask for.
pub const MAX_DEADLINE_MS: u64 = 24 * 3600 * 1000;

/// Largest request body of the upload route: a component at its cap, plus
/// multipart framing.
pub const MAX_UPLOAD_BYTES: usize = (64 << 20) + (1 << 20);

/// Largest request body of a host's report: every worker's captured output
/// (and comm spans) of its packs of one flare.
pub const MAX_REPORT_BYTES: usize = 64 << 20;

/// Largest request body of every other route (JSON documents).
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests served at once; the rest wait for a turn.
pub const MAX_CONCURRENT_REQUESTS: usize = 256;

/// How often hosts' liveness and overdue flares are checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What one tenant may keep.
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    /// Definitions per tenant.
    pub max_definitions: usize,
    /// Versions per definition.
    pub max_versions: usize,
}

/// Settings of `burst serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Worker slots of the embedded host (0: only remote hosts).
    pub slots: u32,
    /// `tenant:token` entries (empty: open, one tenant).
    pub tokens: Vec<String>,
    /// The token host daemons present.
    pub cluster_token: Option<String>,
    /// What one tenant may keep.
    pub quotas: Quotas,
    /// Most flares waiting for slots.
    pub queue_limit: usize,
    /// Most flares of one tenant waiting for slots.
    pub tenant_queue_limit: usize,
    /// Most workers one tenant's running flares may hold (`u32::MAX`: no
    /// bound but the slots).
    pub tenant_worker_limit: u32,
    /// A remote host that has not polled for this long is down.
    pub host_timeout: Duration,
    /// Finished flares are deleted this long after they ended.
    pub retention: Duration,
    /// Broker URL handed to hosts for Redis flares.
    pub redis_url: String,
    /// Broker URL handed to hosts for RabbitMQ flares.
    pub rabbitmq_url: String,
    /// The embedded host's datasets.
    pub datasets: Datasets,
    /// Which tenants may read which datasets.
    pub dataset_grants: DatasetGrants,
}

/// What every handler shares.
pub struct Service {
    auth: Auth,
    quotas: Quotas,
    /// Flares started by requests with an `Idempotency-Key`.
    idempotency: idempotency::Idempotency,
    store: Arc<Store>,
    programs: Arc<Programs>,
    cluster: Arc<Cluster>,
    /// Serializes what changes definitions (deploy, delete) with the
    /// admission of flares that use them: a component file is written and
    /// its version recorded, or a definition checked unused and its files
    /// removed, or a flare's version resolved and the flare admitted, each
    /// as one step, so a delete never removes a component that a version
    /// being deployed or a live flare needs.
    definitions: tokio::sync::Mutex<()>,
    host_timeout: Duration,
    /// Which tenants may read which datasets.
    dataset_grants: DatasetGrants,
    openapi: OnceLock<String>,
    /// Cancelled when the service begins to shut down, ending what would
    /// otherwise stay open (event streams).
    stopping: CancellationToken,
    /// Permits for open event streams.
    streams: Arc<tokio::sync::Semaphore>,
}

impl Service {
    /// Checks limits against their caps and this controller's runtime.
    fn check_limits(&self, limits: &Limits) -> Result<(), ApiError> {
        let cap = self.programs.runtime().config().max_memory_per_worker;
        let above_runtime = LimitError::AboveCap { name: "memory_bytes", value: limits.memory_bytes, cap };
        let checked = limits.check().and(if limits.memory_bytes > cap { Err(above_runtime) } else { Ok(()) });
        checked.map_err(|e| ApiError::bad_request("bad_limits", e.to_string()))
    }
}

/// The three credentials: a tenant's token (every `/v1` route but the
/// hosts', when tokens are configured), the cluster token (registering a
/// host, fetching components) and a host's own (its polls and reports).
struct Credentials;

impl utoipa::Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(utoipa::openapi::Components::new);
        for (name, what) in [
            ("tenant", "A tenant's token (`BURST_TOKENS`); not needed by a controller without tokens"),
            ("cluster", "The cluster token (`BURST_CLUSTER_TOKEN`)"),
            ("host", "The credential a host was issued when it registered (`host_token`)"),
        ] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

#[derive(OpenApi)]
#[openapi(modifiers(&Credentials), security(("tenant" = [])), info(
    title = "burst controller",
    description = "Deploy WebAssembly work functions and run them as flares of simultaneous workers. \
                   Tenant routes take `Authorization: Bearer TOKEN` when tokens are configured; \
                   host routes take the cluster token. Errors are `{code, message}`."
))]
struct ApiDoc;

/// The OpenAPI document of these routes.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This document"))
)]
async fn openapi_json(State(service): State<Arc<Service>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], service.openapi.get().cloned().unwrap_or_default())
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route takes other methods; see /openapi.json",
    )
}

/// Refuses a request without the credential its route needs before any of
/// its body is read: a host's own routes take the credential it was issued
/// at registration, registering and fetching components the cluster token,
/// tenant routes a tenant's token (when tokens are configured). Handlers
/// still derive the tenant from the same headers.
async fn authenticate(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let checked = if let Some(rest) = path.strip_prefix("/v1/hosts/") {
        let host_id = rest.split('/').next().unwrap_or_default();
        auth::bearer(request.headers()).and_then(|token| match service.cluster.is_host(host_id, token) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::unauthorized(format!("not the credential of host `{host_id}`"))),
            Err(_) => Err(hosts::unknown_host(host_id)),
        })
    } else if path.starts_with("/v1/hosts") || path.starts_with("/v1/components/") {
        service.auth.cluster(request.headers())
    } else if path.starts_with("/v1/") {
        service.auth.tenant(request.headers()).map(drop)
    } else {
        Ok(())
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Every route, with the OpenAPI document they make.
fn router(service: Arc<Service>) -> anyhow::Result<Router> {
    // Only the upload route takes a component; every other body is JSON.
    let uploads = OpenApiRouter::new()
        .routes(routes!(definitions::deploy, definitions::get_definition, definitions::delete_definition))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(hosts::health))
        .routes(routes!(openapi_json))
        .routes(routes!(definitions::list_definitions))
        .routes(routes!(flares::create_flare, flares::list_flares))
        .routes(routes!(events::flare_events))
        .routes(routes!(flares::get_flare, flares::cancel_flare))
        .routes(routes!(flares::get_results))
        .routes(routes!(outputs::list_outputs))
        .routes(routes!(outputs::get_output))
        .routes(routes!(hosts::register))
        .routes(routes!(hosts::poll))
        .routes(routes!(hosts::component))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .merge(uploads)
        // Read only after the host's own credential was checked.
        .merge(OpenApiRouter::new().routes(routes!(hosts::report)).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)))
        // An output upload is bounded by its flare's quota, not by a body
        // limit.
        .merge(OpenApiRouter::new().routes(routes!(outputs::upload_output)).layer(DefaultBodyLimit::disable()))
        .split_for_parts();
    let json = api.to_pretty_json().context("writing the OpenAPI document")?;
    let _ = service.openapi.set(json);
    Ok(router
        .route("/", axum::routing::get(dashboard::index))
        .route("/dashboard/{file}", axum::routing::get(dashboard::asset))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&service), authenticate))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        // An access log line per request (at `info`), each request named
        // by an `x-request-id` (the client's, or a fresh UUID) that its
        // answer and every log line of its handling carry.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(service))
}

/// Runs the controller until SIGINT or SIGTERM.
///
/// # Errors
/// When the store, the runtime or the listener cannot be set up.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let auth = Auth::new(&config.tokens, config.cluster_token.clone()).map_err(anyhow::Error::msg)?;
    let store =
        Arc::new(Store::open(&config.data_dir).with_context(|| format!("opening {}", config.data_dir.display()))?);
    let stopped = Failure::new(None, FailureKind::Backend, "the controller stopped before the flare finished");
    let failed = store.fail_unfinished(&stopped)?;
    if failed > 0 {
        tracing::warn!(failed, "flares left unfinished by the previous controller process are marked failed");
    }
    let runtime = Runtime::new(RuntimeConfig { max_workers: config.slots.max(1), ..RuntimeConfig::default() })?;
    let programs = Arc::new(Programs::new(Arc::new(runtime), Arc::clone(&store)));
    let cluster = Cluster::new(
        Arc::clone(&store),
        Arc::clone(&programs),
        ClusterConfig {
            embedded_slots: config.slots,
            queue_limit: config.queue_limit,
            tenant_queue_limit: config.tenant_queue_limit,
            tenant_worker_limit: config.tenant_worker_limit,
            host_timeout: config.host_timeout,
            redis_url: config.redis_url.clone(),
            rabbitmq_url: config.rabbitmq_url.clone(),
            datasets: config.datasets.clone(),
            outputs_dir: store.outputs_dir(),
        },
    );
    let service = Arc::new(Service {
        auth,
        quotas: config.quotas,
        idempotency: idempotency::Idempotency::default(),
        store: Arc::clone(&store),
        programs,
        cluster: Arc::clone(&cluster),
        definitions: tokio::sync::Mutex::new(()),
        host_timeout: config.host_timeout,
        dataset_grants: config.dataset_grants.clone(),
        openapi: OnceLock::new(),
        stopping: CancellationToken::new(),
        streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
    });
    let stopping = service.stopping.clone();
    let app = router(service)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // Tests and scripts read the address from this line (port 0 picks one).
    println!("burst serve: listening on http://{}", listener.local_addr()?);
    let maintenance = tokio::spawn(maintain(cluster, store, config.retention));
    listen::serve(listener, app, async move {
        shutdown_signal().await;
        stopping.cancel();
    })
    .await;
    maintenance.abort();
    Ok(())
}

/// Marks silent hosts down, fails overdue flares, prunes old results.
async fn maintain(cluster: Arc<Cluster>, store: Arc<Store>, retention: Duration) {
    let prune_every = (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        cluster.check();
        if last_prune.is_none_or(|at| at.elapsed() >= prune_every) {
            last_prune = Some(tokio::time::Instant::now());
            let cutoff = now_us().saturating_sub(retention.as_micros() as u64);
            match store.prune(cutoff) {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned flares past their retention"),
                Err(error) => tracing::error!(%error, "pruning old flares failed"),
            }
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}
