//! Attempts and delivery states: what happened to each message at each endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::endpoints::{self, EndpointOut};
use super::error::{ApiError, ErrorResponses};
use super::extract::{Path, Query};
use super::messages::{self, MessageOut};
use super::pagination::{ListResponse, PageParams};
use super::AppState;
use crate::domain::ids::{AttemptId, EndpointId};
use crate::domain::time::rfc3339;
use crate::store::{Attempt, AttemptFilter, DeliveryState, DeliveryStatus, Order};
use utoipa::ToSchema;

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
        DeliveryStatus::Pending | DeliveryStatus::Held => (1, "pending"),
        DeliveryStatus::Failed | DeliveryStatus::Canceled => (2, "fail"),
        DeliveryStatus::Sending => (3, "sending"),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptOut {
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
            id: a.id.into(),
            msg_id: a.msg_id.into(),
            endpoint_id: a.endpoint_id.into(),
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
    ListResponse::build(rows, page, |a| a.id.to_string(), AttemptOut::from)
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-by-endpoint",
    summary = "List an endpoint's attempts, newest first",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid"), PageParams, ("status" = Option<i64>, Query, description = "0 success, 2 fail")),
    responses((status = 200, body = ListResponse<AttemptOut>), ErrorResponses),
    security(("bearer" = []))
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-by-msg",
    summary = "List a message's attempts, newest first",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId"), PageParams, ("status" = Option<i64>, Query, description = "0 success, 2 fail"), ("endpoint_id" = Option<String>, Query, description = "Only attempts to this endpoint")),
    responses((status = 200, body = ListResponse<AttemptOut>), ErrorResponses),
    security(("bearer" = []))
)]
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
        endpoint_id: params.endpoint_id.clone().map(EndpointId::from),
        success: params.success_filter()?,
    };
    let rows = state.store.list_attempts(&app.id, &filter, &page).await?;
    Ok(axum::Json(attempt_page(rows, &page)))
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.get",
    summary = "Get an attempt",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId"), ("attempt_id" = String, Path, description = "The attempt's id")),
    responses((status = 200, body = AttemptOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<axum::Json<AttemptOut>, ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let attempt = state
        .store
        .get_attempt(&app.id, &message.id, &AttemptId::from(attempt_id))
        .await?
        .ok_or_else(|| ApiError::not_found("attempt"))?;
    Ok(axum::Json(attempt.into()))
}

/// A delivery's state: 0 success, 1 pending, 2 fail, 3 sending.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStateOut {
    status: i64,
    status_text: &'static str,
    /// When the next attempt is planned, while the delivery is pending.
    next_attempt: Option<String>,
}

impl From<DeliveryState> for DeliveryStateOut {
    fn from(state: DeliveryState) -> Self {
        let (status, status_text) = status_code_and_text(state.status);
        Self {
            status,
            status_text,
            next_attempt: state.next_attempt_at.map(rfc3339),
        }
    }
}

/// An endpoint a message went to, with that delivery's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    endpoint: EndpointOut,
    #[serde(flatten)]
    state: DeliveryStateOut,
}

/// A message sent to an endpoint, with that delivery's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointMessageOut {
    #[serde(flatten)]
    message: MessageOut,
    #[serde(flatten)]
    state: DeliveryStateOut,
}

/// An empty JSON object, which the Svix SDKs read from some routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmptyOut {}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
    with_content: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-attempted-destinations",
    summary = "List the endpoints a message went to, with each delivery's state",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId"), PageParams),
    responses((status = 200, body = ListResponse<MessageEndpointOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn message_endpoints(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<MessageEndpointOut>>, ApiError> {
    let (app, message) = messages::load(&state, &principal, &app_id, &msg_id).await?;
    let page = params.page.parse(Order::Ascending)?;
    let rows = state
        .store
        .list_message_deliveries(&app.id, &message.id, &page)
        .await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |(e, _)| e.id.to_string(),
        |(e, s)| MessageEndpointOut {
            endpoint: e.into(),
            state: s.into(),
        },
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.list-attempted-messages",
    summary = "List the messages sent to an endpoint, with each delivery's state",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid"), PageParams, ("with_content" = Option<bool>, Query, description = "Include payloads (default true)")),
    responses((status = 200, body = ListResponse<EndpointMessageOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn endpoint_messages(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListResponse<EndpointMessageOut>>, ApiError> {
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
        |(m, _)| m.id.to_string(),
        |(m, s)| EndpointMessageOut {
            message: MessageOut::new(m, with_content),
            state: s.into(),
        },
    )))
}

/// Sends one message to one endpoint again, now, whatever happened before.
#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    tag = "Message Attempt",
    operation_id = "v1.message-attempt.resend",
    summary = "Send a message to an endpoint again",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 202, body = EmptyOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn resend(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> Result<(StatusCode, axum::Json<EmptyOut>), ApiError> {
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
    if message.payload_expired {
        return Err(ApiError::conflict(
            "the message's payload has expired or was deleted; there is nothing to resend",
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
    Ok((StatusCode::ACCEPTED, axum::Json(EmptyOut {})))
}
