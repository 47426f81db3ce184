//! The management API: Svix v1 compatible routes over the store.
//!
//! Handlers parse input into domain types, check the caller's scope, call the store, and shape
//! the answer. The API never calls a webhook endpoint: it hands fresh deliveries to the local
//! worker or wakes the workers.

mod apps;
mod attempts;
pub mod auth;
mod endpoints;
pub mod error;
mod event_types;
mod extract;
mod messages;
mod pagination;
mod serde_util;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::delivery::DispatchHandle;
use crate::store::SharedStore;

/// Room for the JSON around a payload of the largest allowed size.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    /// The local worker, when this process runs one.
    pub dispatch: Option<DispatchHandle>,
    /// SHA-256 of `HOOKD_ADMIN_TOKEN`, if set.
    pub admin_token_hash: Option<String>,
    pub max_payload_bytes: usize,
}

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.max_payload_bytes + ENVELOPE_BYTES;
    Router::new()
        .merge(apps::routes())
        .merge(endpoints::routes())
        .merge(event_types::routes())
        .merge(messages::routes())
        .merge(attempts::routes())
        .route(
            "/api/v1/auth/app-portal-access/{app_id}",
            post(auth::app_portal_access),
        )
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ping", get(ping))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(error::ApiError::internal())
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The health routes alone, for a worker-only process (`--role worker`): it serves no
/// management API, but load balancers and orchestrators can still probe it.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ping", get(ping))
        .fallback(error::no_route)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 204 when the database answers, 503 when it does not.
async fn health(State(state): State<AppState>) -> StatusCode {
    match state.store.ping().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(err) => {
            tracing::warn!(error = %err, "health check: the database does not answer");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// 204 while the process is up.
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
