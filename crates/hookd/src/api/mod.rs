//! The management API: Svix v1 compatible routes over the store.
//!
//! Handlers parse input into domain types, check the caller's scope, call the store, and shape
//! the answer. The API never calls a webhook endpoint: it hands fresh deliveries to the local
//! worker or wakes the workers.

mod apps;
pub(crate) mod attempts;
pub mod auth;
pub(crate) mod certify;
pub(crate) mod endpoints;
pub(crate) mod error;
pub(crate) mod event_types;
pub(crate) mod extract;
pub(crate) mod feed;
pub mod idempotency;
mod listen;
pub(crate) mod messages;
pub mod openapi;
mod pagination;
pub(crate) mod rate_limit;
pub(crate) mod recover;
pub(crate) mod send_example;
mod serde_util;
mod text;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use std::sync::Arc;

use crate::catalog::validators::PayloadValidators;

use crate::delivery::DispatchHandle;
use crate::operational::Emitter;
use crate::outbound::DestinationGuard;
use crate::relay::RelayHub;
use crate::store::SharedStore;

/// Room for the JSON around a payload of the largest allowed size.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// What every handler can reach. Extractors and middleware clone the state for every request,
/// so it is one shared pointer to [`AppContext`].
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppContext>);

impl AppState {
    pub fn new(context: AppContext) -> Self {
        Self(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// The services and settings behind [`AppState`].
pub(crate) struct AppContext {
    pub store: SharedStore,
    /// The local worker, when this process runs one.
    pub dispatch: Option<DispatchHandle>,
    /// SHA-256 of `HOOKD_ADMIN_TOKEN`, if set.
    pub admin_token_hash: Option<String>,
    pub max_payload_bytes: usize,
    /// Refuses endpoint URLs whose literal address deliveries could never reach.
    pub guard: Arc<DestinationGuard>,
    pub rate_limit: Arc<rate_limit::ApiRateLimit>,
    /// The `hookd listen` sessions connected to this node.
    pub relay: Arc<RelayHub>,
    /// The pull feed's long-polls waiting on this node, woken by ingest.
    pub feed: Arc<feed::FeedWaiters>,
    /// The compiled schemas of event types that validate payloads at ingest.
    pub validators: Arc<PayloadValidators>,
    /// Operational webhooks about endpoint changes (does nothing when they are off).
    pub operational: Emitter,
    /// The address merchants reach hookd at, for portal links (no trailing slash).
    pub public_url: String,
    /// The merchant portal's brand and framing.
    pub portal: crate::config::PortalSettings,
    /// Which signature headers deliveries carry, for the portal's code samples.
    pub signature_headers: crate::config::SignatureHeaders,
    /// This node's traffic, counted for the operator dashboard.
    pub traffic: Arc<crate::telemetry::Traffic>,
    /// The settings in force, shown (secrets redacted) on the dashboard's system page.
    pub settings: Arc<crate::config::Settings>,
    /// This node's id in the `nodes` table.
    pub node_id: String,
    /// The client deliveries use, with its SSRF guard: endpoint checks go through it too.
    pub outbound: crate::outbound::Outbound,
}

/// The whole API as one router, with `pages` mounted beside it under the same middleware: the
/// merchant portal's routes, which the server passes in, since the portal is built on the API
/// and not the other way round.
pub(crate) fn router(state: AppState, pages: Router<AppState>) -> Router {
    let body_limit = state.max_payload_bytes + ENVELOPE_BYTES;
    Router::new()
        .merge(apps::routes())
        .merge(endpoints::routes())
        .merge(certify::routes())
        .merge(event_types::routes())
        .merge(messages::routes())
        .merge(feed::routes())
        .merge(attempts::routes())
        .merge(recover::routes())
        .merge(send_example::routes())
        .merge(listen::routes())
        .route(
            "/api/v1/auth/app-portal-access/{app_id}",
            post(auth::app_portal_access),
        )
        .route("/api/v1/auth/logout", post(auth::logout))
        .merge(pages)
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ping", get(ping))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/docs", get(openapi::reference_page))
        .route(
            "/api/v1/docs/redoc.standalone.js",
            get(openapi::redoc_script),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(error::ApiError::internal())
        }))
        .layer(axum::middleware::from_fn(count_request))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The health routes alone, for a worker-only process (`--role worker`): it serves no
/// management API, but load balancers and orchestrators can still probe it.
pub(crate) fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ping", get(ping))
        .route("/metrics", get(metrics))
        .fallback(error::no_route)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 204 when the database answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "Health",
    operation_id = "v1.health.get",
    summary = "Readiness: the database answers",
    responses(
        (status = 204, description = "Ready"),
        (status = 503, description = "The database does not answer")
    )
)]
async fn health(State(state): State<AppState>) -> StatusCode {
    if state.dispatch.as_ref().is_some_and(|d| !d.alive()) {
        tracing::warn!("health check: the delivery engine stopped");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match state.store.ping().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(err) => {
            tracing::warn!(error = %err, "health check: the database does not answer");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::prometheus().render(),
    )
}

/// Counts every request by method, route template and status class.
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_string();
    let response = next.run(request).await;
    crate::telemetry::http_request(method.as_str(), &route, response.status().as_u16());
    response
}

/// 204 while the process is up.
#[utoipa::path(
    get,
    path = "/api/v1/health/ping",
    tag = "Health",
    operation_id = "v1.health.ping",
    summary = "Liveness: the process answers",
    responses((status = 204, description = "Alive"))
)]
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
