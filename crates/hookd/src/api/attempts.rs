//! Attempts and delivery states: what happened to each message at each endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::endpoints::{self, EndpointOut};
use super::error::ApiError;
use super::extract::{Path, Query};
use super::messages::{self, MessageOut};
use super::pagination::{ListResponse, PageParams};
use super::AppState;
use crate::domain::time::rfc3339;
use crate::store::{Attempt, AttemptFilter, DeliveryState, DeliveryStatus, Order};

pub fn routes() -> Router<AppState> {
    let app = "/api/v1/app/{app_id}";
    Router::new()
        .route(
            &format!("{app}/attempt/endpoint/{{endpoint_id}}"),
            get(by_endpoint),
        )
        .route(&format!("{app}/attempt/msg/{{msg_id}}"), get(by_message))
        .route(
            &format!("{app}/msg/{{msg_id}}/attempt/{{attempt_id}}"),
            get(read),
        )
        .route(
            &format!("{app}/msg/{{msg_id}}/endpoint"),
            get(message_endpoints),
        )
        .route(
            &format!("{app}/endpoint/{{endpoint_id}}/msg"),
            get(endpoint_messages),
        )
        .route(
            &format!("{app}/msg/{{msg_id}}/endpoint/{{endpoint_id}}/resend"),
            post(resend),
        )
}

/// Svix's numbering and names of message states.
fn status_code_and_text(status: DeliveryStatus) -> (i64, &'static str) {
    match status {
        DeliveryStatus::Success => (0, "success"),
        DeliveryStatus::Pending => (1, "pending"),
        DeliveryStatus::Failed | DeliveryStatus::Canceled => (2, "fail"),
        DeliveryStatus::Sending => (3, "sending"),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptOut {
    id: String,
    msg_id: String,
    endpoint_id: String,
    url: String,
    response: String,
    response_status_code: i64,
    response_duration_ms: i64,
    status: i64,
    status_text: &'static str,
    trigger_type: i64,
    timestamp: String,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        let state = if a.success {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Failed
        };
        let (status, status_text) = status_code_and_text(state);
        Self {
            id: a.id,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            url: a.url,
            response: a.response,
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status,
            status_text,
            trigger_type: a.trigger_type as i64,
            timestamp: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Deserialize)]
struct AttemptParams {
    #[serde(flatten)]
    page: PageParams,
    status: Option<String>,
    endpoint_id: Option<String>,
}

impl AttemptParams {
    fn success_filter(&self) -> Result<Option<bool>, ApiError> {
        match self.status.as_deref() {
            None => Ok(None),
            Some("0") => Ok(Some(true)),
            Some("2") => Ok(Some(false)),
            // Attempts are recorded once finished, so none is pending or sending.
            Some("1") | Some("3") => Ok(None),
            Some(_) => Err(ApiError::invalid(
                &["query", "status"],
                "must be 0 (success), 1 (pending), 2 (fail) or 3 (sending)",
            )),
        }
    }
}

fn attempt_page(rows: Vec<Attempt>, page: &crate::store::PageRequest) -> ListResponse<AttemptOut> {
    ListResponse::build(rows, page, |a| a.id.clone(), AttemptOut::from)
}

async fn by_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Query(params): Query<AttemptParams>,
) -> Result<axum::Json<ListResponse<AttemptOut>>, ApiError> {
    let (app, endpoint) = endpoints::load(&state, &principal, &app_id, &endpoint_id).await?;
    let page = params.page.parse(Order::Descending)?;
    let filter = AttemptFilter {
        msg_id: None,
        endpoint_id: Some(endpoint.id),
        success: params.success_filter()?,
    };
    let rows = state.store.list_attempts(&app.id, &filter, &page).await?;
    Ok(axum::Json(attempt_page(rows, &page)))
}

async fn by_message(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id)): Path<(String, String)>,
    Query(params): Query<AttemptParams>,
) -> Result<axum::Json<ListResponse<AttemptOut>>, ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let page = params.page.parse(Order::Descending)?;
    let filter = AttemptFilter {
        msg_id: Some(message.id),
        endpoint_id: params.endpoint_id.clone(),
        success: params.success_filter()?,
    };
    let rows = state.store.list_attempts(&app.id, &filter, &page).await?;
    Ok(axum::Json(attempt_page(rows, &page)))
}

async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<axum::Json<AttemptOut>, ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let attempt = state
        .store
        .get_attempt(&app.id, &message.id, &attempt_id)
        .await?
        .ok_or_else(|| ApiError::not_found("attempt"))?;
    Ok(axum::Json(attempt.into()))
}

/// A delivery's state beside the endpoint or message it concerns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WithState<T> {
    #[serde(flatten)]
    inner: T,
    status: i64,
    status_text: &'static str,
    next_attempt: Option<String>,
}

fn with_state<T>(inner: T, state: DeliveryState) -> WithState<T> {
    let (status, status_text) = status_code_and_text(state.status);
    WithState {
        inner,
        status,
        status_text,
        next_attempt: state.next_attempt_at.map(rfc3339),
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
    with_content: Option<String>,
}

async fn message_endpoints(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<WithState<EndpointOut>>>, ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let page = params.page.parse(Order::Ascending)?;
    let rows = state
        .store
        .list_message_deliveries(&app.id, &message.id, &page)
        .await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |(e, _)| e.id.clone(),
        |(e, s)| with_state(EndpointOut::from(e), s),
    )))
}

async fn endpoint_messages(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<WithState<MessageOut>>>, ApiError> {
    let (app, endpoint) = endpoints::load(&state, &principal, &app_id, &endpoint_id).await?;
    let with_content = messages::with_content(params.with_content.as_deref())?;
    let page = params.page.parse(Order::Descending)?;
    let rows = state
        .store
        .list_endpoint_deliveries(&app.id, &endpoint.id, &page)
        .await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |(m, _)| m.id.clone(),
        |(m, s)| with_state(MessageOut::new(m, with_content), s),
    )))
}

/// Sends one message to one endpoint again, now, whatever happened before.
async fn resend(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let endpoint = state
        .store
        .get_endpoint(&app.id, &endpoint_id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    if endpoint.disabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it before resending",
        ));
    }
    if !state
        .store
        .resend(&app.id, &message.id, &endpoint.id)
        .await?
    {
        return Err(ApiError::not_found("message or endpoint"));
    }
    if let Some(dispatch) = &state.dispatch {
        dispatch.wake();
    }
    // The Svix SDKs read a JSON body (`EmptyResponse`) from this route.
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({}))))
}
