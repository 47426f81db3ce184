//! The server side of `hookd listen` (a hookd extension; Svix SDKs never call it).
//!
//! `POST …/listen` opens a session and an endpoint that delivers to it; the CLI long-polls
//! `GET …/listen/{session}/next` for deliveries and posts each local answer to
//! `POST …/listen/{session}/reply/{request_id}`; `DELETE …/listen/{session}` ends it.
//!
//! The session lives in this node's memory ([`crate::relay`]), so its endpoint is pinned to
//! this node ([`crate::store::Store::pin_listen_endpoint`]): with several nodes on one
//! PostgreSQL database, only this node claims its deliveries. A CLI that lost its node (the
//! node stopped, or a load balancer sent it elsewhere) re-opens the same session with
//! `POST …/listen {"sessionId", "endpointId"}` on whichever node it reaches now, which pins the
//! endpoint to itself; the deliveries that waited, and those that failed meanwhile, come to it.
//! A node without a delivery worker (`--role api`) could hold a session but never deliver to
//! it, so it refuses to open one.

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
    /// Re-opens this session (with its `endpointId`) on this node instead of opening a new one.
    session_id: Option<String>,
    endpoint_id: Option<String>,
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
    let Some(dispatch) = state.dispatch.clone() else {
        return Err(ApiError::conflict(
            "this node runs no delivery worker (--role api), so it cannot hold a `hookd listen` \
             session: point the CLI at a node that runs one (--role all)",
        ));
    };
    let (status, session_id, endpoint_id) = match (input.session_id, input.endpoint_id) {
        (Some(session_id), Some(endpoint_id)) => {
            let endpoint = state
                .store
                .get_endpoint(&app.id, &endpoint_id)
                .await?
                .filter(|e| relay::session_of(&e.url) == Some(session_id.as_str()))
                .ok_or_else(|| ApiError::not_found("listen session"))?;
            (StatusCode::OK, session_id, endpoint.id)
        }
        (None, None) => {
            let session_id = new_id(IdPrefix::Token).replacen("tok_", "lsn_", 1);
            let endpoint = listen_endpoint(&app.id, &session_id, input.event_types);
            state.store.create_endpoint(&endpoint).await?;
            (StatusCode::CREATED, session_id, endpoint.id)
        }
        _ => {
            return Err(ApiError::invalid(
                &["body", "endpointId"],
                "sessionId and endpointId re-open a session together",
            ))
        }
    };
    // The session exists here before its endpoint is pinned here (and, when new, enabled), so
    // no delivery this node claims for it finds it missing.
    state.relay.open(&session_id, &app.id, &endpoint_id);
    let pinned = state
        .store
        .pin_listen_endpoint(&app.id, &endpoint_id, &state.node_id, now_millis())
        .await;
    match pinned {
        Ok(true) => {}
        // The endpoint was deleted meanwhile (the session was closed elsewhere).
        Ok(false) => {
            state.relay.close(&session_id);
            return Err(ApiError::not_found("listen session"));
        }
        Err(err) => {
            state.relay.close(&session_id);
            return Err(err.into());
        }
    }
    // Deliveries that waited for the session, or failed while it was away, are due now.
    dispatch.wake();
    Ok((
        status,
        axum::Json(OpenOut {
            session_id,
            endpoint_id: endpoint_id.into(),
        }),
    ))
}

/// A new session's endpoint. It is stored disabled, so no message matches it before pinning
/// (which enables it) has tied it to this node.
fn listen_endpoint(app_id: &AppId, session_id: &str, event_types: Option<Vec<String>>) -> Endpoint {
    let now = now_millis();
    Endpoint {
        id: EndpointId::generate(),
        app_id: app_id.clone(),
        uid: None,
        url: format!("{}://{session_id}", relay::SCHEME),
        description: "hookd listen session".into(),
        disabled: true,
        // Not parsed, as before: a name that would not parse matches no message (every
        // message's event type was parsed), so the session simply receives none of it.
        event_types: event_types
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
    }
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
