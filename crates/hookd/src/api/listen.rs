//! The server side of `hookd listen` (a hookd extension; Svix SDKs never call it).
//!
//! `POST …/listen` opens a session and an endpoint that delivers to it; the CLI long-polls
//! `GET …/listen/{session}/next` for deliveries and posts each local answer to
//! `POST …/listen/{session}/reply/{request_id}`; `DELETE …/listen/{session}` ends it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::apps;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::AppState;
use crate::domain::ids::{new_id, AppId, EndpointId, IdPrefix};
use crate::domain::time::now_millis;
use crate::domain::EventTypeName;
use crate::relay::{self, RelayReply};
use crate::store::Endpoint;

/// The longest a CLI's poll is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<AppState> {
    let base = "/api/v1/app/{app_id}/listen";
    Router::new()
        .route(base, post(open))
        .route(
            &format!("{base}/{{session_id}}"),
            axum::routing::delete(close),
        )
        .route(&format!("{base}/{{session_id}}/next"), get(next))
        .route(
            &format!("{base}/{{session_id}}/reply/{{request_id}}"),
            post(reply),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenIn {
    /// Only these event types; all when absent.
    event_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OpenOut {
    session_id: String,
    endpoint_id: String,
}

async fn open(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Json(input): Json<OpenIn>,
) -> Result<(StatusCode, axum::Json<OpenOut>), ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    let session_id = new_id(IdPrefix::Token).replacen("tok_", "lsn_", 1);
    let now = now_millis();
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        app_id: app.id.clone(),
        uid: None,
        url: format!("{}://{session_id}", relay::SCHEME),
        description: "hookd listen session".into(),
        disabled: false,
        // Not parsed, as before: a name that would not parse matches no message (every
        // message's event type was parsed), so the session simply receives none of it.
        event_types: input
            .event_types
            .filter(|t| !t.is_empty())
            .map(|types| types.into_iter().map(EventTypeName::from_stored).collect()),
        channels: None,
        throttle_rate: None,
        metadata: Default::default(),
        headers: Default::default(),
        secret: hookd_signing::Secret::generate().into(),
        retiring_secrets: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    state.relay.open(&session_id, &app.id, &endpoint.id);
    state.store.create_endpoint(&endpoint).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(OpenOut {
            session_id,
            endpoint_id: endpoint.id.into(),
        }),
    ))
}

/// Checks the caller may use this application's session.
async fn session_app(
    state: &AppState,
    principal: &Principal,
    app_key: &str,
    session_id: &str,
) -> Result<AppId, ApiError> {
    let app = apps::load(state, principal, app_key).await?;
    if !state.relay.owned_by(session_id, &app.id) {
        return Err(ApiError::not_found("listen session"));
    }
    Ok(app.id)
}

#[derive(Debug, Deserialize)]
struct NextParams {
    /// Seconds to wait for a delivery (at most 30).
    wait: Option<u64>,
}

async fn next(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, session_id)): Path<(String, String)>,
    Query(params): Query<NextParams>,
) -> Result<Response, ApiError> {
    session_app(&state, &principal, &app_id, &session_id).await?;
    let wait = Duration::from_secs(params.wait.unwrap_or(25)).min(MAX_WAIT);
    Ok(match state.relay.next(&session_id, wait).await {
        Some(request) => axum::Json(request).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn reply(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, session_id, request_id)): Path<(String, String, String)>,
    Json(input): Json<RelayReply>,
) -> Result<StatusCode, ApiError> {
    session_app(&state, &principal, &app_id, &session_id).await?;
    if !state.relay.reply(&session_id, &request_id, input) {
        return Err(ApiError::not_found("waiting delivery"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the session and deletes its endpoint.
async fn close(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app_id = session_app(&state, &principal, &app_id, &session_id).await?;
    if let Some(endpoint_id) = state.relay.close(&session_id) {
        state
            .store
            .delete_endpoint(&app_id, &EndpointId::from(endpoint_id))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
