//! Recovery as a background task: `POST …/endpoint/{id}/recover` records a task that the
//! workers run in batches (see [`crate::tasks`]); `GET /api/v1/background-task/{id}` reads it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::endpoints;
use super::error::{ApiError, ErrorResponses};
use super::extract::{Json, Path};
use super::AppState;
use crate::domain::ids::TaskId;
use crate::domain::time::{now_millis, parse_rfc3339, rfc3339};
use crate::store::{BackgroundTask, TaskKind, TaskStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
            post(recover),
        )
        .route("/api/v1/background-task/{task_id}", get(read))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverIn {
    /// Recover the failed messages created at or after this RFC 3339 time.
    #[schema(format = DateTime)]
    since: String,
    /// …and before this one (default: now).
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// A task just started, as Svix answers `recover`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOut {
    pub(crate) id: String,
    /// `running`, `finished` or `failed`.
    status: &'static str,
    /// `endpoint.recover`.
    task: &'static str,
    updated_at: String,
}

/// How far a recovery got (Svix's `messagesSent`), and what it covers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverData {
    /// Failed deliveries made due again so far.
    messages_sent: u64,
    app_id: String,
    endpoint_id: String,
    since: String,
    until: String,
}

/// A background task.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    id: String,
    /// `running`, `finished` or `failed` (the endpoint was disabled or deleted meanwhile).
    status: &'static str,
    /// `endpoint.recover`.
    task: &'static str,
    data: RecoverData,
    updated_at: String,
}

impl From<BackgroundTask> for BackgroundTaskOut {
    fn from(task: BackgroundTask) -> Self {
        Self {
            id: task.id.into(),
            status: task.status.as_str(),
            task: task.kind.as_str(),
            data: RecoverData {
                messages_sent: task.done,
                app_id: task.app_id.into(),
                endpoint_id: task.endpoint_id.into(),
                since: rfc3339(task.since),
                until: rfc3339(task.until),
            },
            updated_at: rfc3339(task.updated_at),
        }
    }
}

fn time(value: &str, field: &str) -> Result<i64, ApiError> {
    parse_rfc3339(value)
        .ok_or_else(|| ApiError::invalid(&["body", field], "must be an RFC 3339 timestamp"))
}

/// Sends again every message whose delivery to the endpoint failed (was exhausted) in a time
/// window, as a durable task: it survives restarts and finishes on any worker.
#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    tag = "Endpoint",
    operation_id = "v1.endpoint.recover",
    summary = "Resend the failed messages of a time window",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    request_body = RecoverIn,
    responses((status = 202, body = RecoverOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn recover(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<RecoverIn>,
) -> Result<(StatusCode, axum::Json<RecoverOut>), ApiError> {
    let (app, endpoint) = endpoints::load(&state, &principal, &app_id, &endpoint_id).await?;
    let now = now_millis();
    let since = time(&input.since, "since")?;
    let until = match input.until.as_deref() {
        Some(text) => time(text, "until")?,
        None => now,
    };
    if until <= since {
        return Err(ApiError::invalid(
            &["body", "until"],
            "must be later than since",
        ));
    }
    if endpoint.disabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it before recovering",
        ));
    }
    let task = BackgroundTask {
        id: TaskId::generate(),
        app_id: app.id,
        kind: TaskKind::EndpointRecover,
        status: TaskStatus::Running,
        endpoint_id: endpoint.id,
        since,
        until,
        done: 0,
        created_at: now,
        updated_at: now,
    };
    state.store.create_task(&task).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RecoverOut {
            id: task.id.into(),
            status: task.status.as_str(),
            task: task.kind.as_str(),
            updated_at: rfc3339(task.updated_at),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/background-task/{task_id}",
    tag = "Background Task",
    operation_id = "v1.background-task.get",
    summary = "Get a background task",
    params(("task_id" = String, Path, description = "The task's id")),
    responses((status = 200, body = BackgroundTaskOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(task_id): Path<String>,
) -> Result<axum::Json<BackgroundTaskOut>, ApiError> {
    let task = state
        .store
        .get_task(&TaskId::from(task_id))
        .await?
        .filter(|task| match &principal {
            Principal::Org => true,
            // Another tenant's task does not exist for an application token.
            Principal::App(app_id) => *app_id == task.app_id,
        })
        .ok_or_else(|| ApiError::not_found("background task"))?;
    Ok(axum::Json(task.into()))
}
