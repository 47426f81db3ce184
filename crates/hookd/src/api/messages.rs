//! Messages: ingest with fan-out, and reading them back.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::apps;
use super::auth::Principal;
use super::endpoints::check_channels;
use super::error::{ApiError, ErrorResponses, FieldError};
use super::extract::{Json, Path, Query};
use super::pagination::{ListResponse, PageParams};
use super::AppState;
use crate::catalog::validators::PayloadError;
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::{now_millis, parse_rfc3339, rfc3339};
use crate::domain::{Channel, EventTypeName, Uid};
use crate::store::{Message, MessageFilter, Order};
use crate::telemetry;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/app/{app_id}/msg", get(list).post(create))
        .route("/api/v1/app/{app_id}/msg/{msg_id}", get(read))
        .route(
            "/api/v1/app/{app_id}/msg/{msg_id}/content",
            delete(expunge_content),
        )
}

/// How long a payload is kept unless the message says otherwise, in days.
pub const DEFAULT_PAYLOAD_RETENTION_DAYS: i64 = 90;
const MAX_PAYLOAD_RETENTION_DAYS: i64 = 90;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const HOUR_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn {
    event_type: EventTypeName,
    /// Your own id of the event; the message can be read by it.
    event_id: Option<Uid>,
    /// The JSON object delivered, byte for byte, as the body of every delivery.
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    channels: Option<Vec<Channel>>,
    /// hookd extension: messages with the same key reach each endpoint in ingest order; a
    /// failing one holds back only later messages of that key.
    #[schema(value_type = Option<Uid>)]
    ordering_key: Option<Uid>,
    /// Days the payload is kept (1 to 90, default 90); afterwards it reads as `{}` and
    /// deliveries still waiting are cancelled.
    #[schema(minimum = 1, maximum = 90)]
    payload_retention_period: Option<i64>,
    /// Hours the payload is kept (1 to 2160), instead of `payloadRetentionPeriod`.
    #[schema(minimum = 1, maximum = 2160)]
    payload_retention_hours: Option<i64>,
}

impl MessageIn {
    /// How long the payload is kept, in milliseconds.
    fn payload_retention_ms(&self) -> Result<i64, ApiError> {
        match (self.payload_retention_period, self.payload_retention_hours) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                &["body", "payloadRetentionHours"],
                "give payloadRetentionPeriod or payloadRetentionHours, not both",
            )),
            (None, Some(hours)) if (1..=MAX_PAYLOAD_RETENTION_DAYS * 24).contains(&hours) => {
                Ok(hours * HOUR_MS)
            }
            (None, Some(_)) => Err(ApiError::invalid(
                &["body", "payloadRetentionHours"],
                format!(
                    "must be between 1 and {} hours",
                    MAX_PAYLOAD_RETENTION_DAYS * 24
                ),
            )),
            (Some(days), None) if (1..=MAX_PAYLOAD_RETENTION_DAYS).contains(&days) => {
                Ok(days * DAY_MS)
            }
            (Some(_), None) => Err(ApiError::invalid(
                &["body", "payloadRetentionPeriod"],
                format!("must be between 1 and {MAX_PAYLOAD_RETENTION_DAYS} days"),
            )),
            (None, None) => Ok(DEFAULT_PAYLOAD_RETENTION_DAYS * DAY_MS),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    /// `{}` when the caller asked for no content: the Svix SDKs require the field.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    pub timestamp: String,
    /// Present (true) once the payload was removed, at the end of its retention or by
    /// `DELETE …/content`; `payload` is then `{}`. A hookd extension.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub payload_expired: bool,
}

impl MessageOut {
    pub fn new(message: Message, with_content: bool) -> Self {
        // Stored payloads were valid JSON objects when ingested.
        let content = if with_content && !message.payload_expired {
            &*message.payload
        } else {
            "{}"
        };
        let payload = RawValue::from_string(content.to_string())
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("{} is JSON"));
        Self {
            id: message.id,
            event_type: message.event_type,
            event_id: message.event_id,
            payload,
            channels: message.channels,
            ordering_key: message.ordering_key,
            timestamp: rfc3339(message.created_at),
            payload_expired: message.payload_expired,
        }
    }
}

/// `with_content` (default true) says whether payloads are included.
pub fn with_content(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError::invalid(
            &["query", "with_content"],
            "must be true or false",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct CreateParams {
    with_content: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/msg",
    tag = "Message",
    operation_id = "v1.message.create",
    summary = "Send a message to every subscribed endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("with_content" = Option<bool>, Query, description = "Include payloads (default true)")),
    request_body = MessageIn,
    responses((status = 202, body = MessageOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Query(params): Query<CreateParams>,
    Json(input): Json<MessageIn>,
) -> Result<(StatusCode, axum::Json<MessageOut>), ApiError> {
    let with_content = with_content(params.with_content.as_deref())?;
    let app = apps::load(&state, &principal, &app_id).await?;
    let payload = input.payload.get();
    if !payload.starts_with('{') {
        return Err(ApiError::invalid(
            &["body", "payload"],
            "must be a JSON object",
        ));
    }
    if payload.len() > state.max_payload_bytes {
        return Err(ApiError::payload_too_large(state.max_payload_bytes));
    }
    check_payload(&state, input.event_type.as_str(), payload).await?;
    let retention = input.payload_retention_ms()?;
    let now = now_millis();
    let message = Message {
        id: new_id(IdPrefix::Message),
        app_id: app.id,
        event_type: input.event_type.into(),
        event_id: input.event_id.map(String::from),
        channels: check_channels(input.channels)?,
        payload: payload.into(),
        ordering_key: input.ordering_key.map(String::from),
        created_at: now,
        payload_expires_at: now + retention,
        payload_expired: false,
    };
    let span = tracing::info_span!("ingest", app_id = %message.app_id, msg_id = %message.id);
    tracing::Instrument::instrument(ingest(&state, &message), span).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(MessageOut::new(message, with_content)),
    ))
}

/// Commits the message with its fan-out, then passes the deliveries to the local worker (or
/// wakes the workers, when they must claim them).
async fn ingest(state: &AppState, message: &Message) -> Result<(), ApiError> {
    let reservation = state.dispatch.as_ref().and_then(|d| d.reserve());
    let lease = reservation.as_ref().map(|r| r.lease.clone());
    let started = std::time::Instant::now();
    let ingested = state.store.create_message(message, lease).await?;
    telemetry::committed("ingest", started.elapsed());
    telemetry::message_ingested();
    state.traffic.message_in();
    state.feed.committed(&message.app_id);
    if let Some(reservation) = reservation {
        reservation.hand_over(ingested.claimed);
    }
    // Deliveries the lease could not take (a busy or throttled endpoint, no room at all) are
    // claimed; the endpoint may have stopped being busy since the lease was taken.
    match &state.dispatch {
        Some(dispatch) if ingested.unleased > 0 => dispatch.wake(),
        _ => {}
    }
    Ok(())
}

/// Checks the payload against its event type's schema when the event type asks for it
/// (`validatePayloads`): a 422 names the first failing place under `["body", "payload"]`.
async fn check_payload(state: &AppState, event_type: &str, payload: &str) -> Result<(), ApiError> {
    match state.validators.check(event_type, payload).await {
        Ok(()) => Ok(()),
        Err(PayloadError::Store(err)) => Err(err.into()),
        Err(PayloadError::Invalid(violation)) => {
            let mut loc = vec!["body".to_string(), "payload".to_string()];
            loc.extend(violation.segments());
            Err(ApiError::invalid_fields(vec![FieldError {
                loc,
                msg: violation.message,
                kind: "value_error".into(),
            }]))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    page: PageParams,
    channel: Option<String>,
    before: Option<String>,
    after: Option<String>,
    with_content: Option<String>,
}

/// Values of a query parameter that may repeat or hold a comma-separated list.
pub fn repeated(raw: Option<&str>, key: &str) -> Option<Vec<String>> {
    let values: Vec<String> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key || k == &format!("{key}[]"))
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

fn time_param(value: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            parse_rfc3339(text)
                .ok_or_else(|| ApiError::invalid(&["query", name], "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/msg",
    tag = "Message",
    operation_id = "v1.message.list",
    summary = "List messages, newest first",
    params(("app_id" = String, Path, description = "The application's id or uid"), PageParams, ("channel" = Option<String>, Query, description = "Only messages on this channel"), ("event_types" = Option<Vec<String>>, Query, description = "Only these event types"), ("before" = Option<String>, Query, description = "Only messages before this RFC 3339 time"), ("after" = Option<String>, Query, description = "Only messages after this RFC 3339 time"), ("with_content" = Option<bool>, Query, description = "Include payloads (default true)")),
    responses((status = 200, body = ListResponse<MessageOut>), ErrorResponses),
    security(("bearer" = []))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Query(params): Query<ListParams>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ListResponse<MessageOut>>, ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    let page = params.page.parse(Order::Descending)?;
    let with_content = with_content(params.with_content.as_deref())?;
    let filter = MessageFilter {
        channel: params.channel,
        event_types: repeated(raw.as_deref(), "event_types"),
        before: time_param(params.before.as_deref(), "before")?,
        after: time_param(params.after.as_deref(), "after")?,
        ..MessageFilter::default()
    };
    let rows = state.store.list_messages(&app.id, &filter, &page).await?;
    Ok(axum::Json(ListResponse::build(
        rows,
        &page,
        |m| m.id.clone(),
        |m| MessageOut::new(m, with_content),
    )))
}

#[derive(Debug, Deserialize)]
struct ReadParams {
    with_content: Option<String>,
}

/// Loads a message (by id or eventId) of an application the caller may see.
pub async fn load(
    state: &AppState,
    principal: &Principal,
    app_key: &str,
    msg_key: &str,
) -> Result<(crate::store::Application, Message), ApiError> {
    let app = apps::load(state, principal, app_key).await?;
    let message = state
        .store
        .get_message(&app.id, msg_key)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok((app, message))
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/msg/{msg_id}",
    tag = "Message",
    operation_id = "v1.message.get",
    summary = "Get a message",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId"), ("with_content" = Option<bool>, Query, description = "Include payloads (default true)")),
    responses((status = 200, body = MessageOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<axum::Json<MessageOut>, ApiError> {
    let with_content = with_content(params.with_content.as_deref())?;
    let (_, message) = load(&state, &principal, &app_id, &msg_id).await?;
    Ok(axum::Json(MessageOut::new(message, with_content)))
}

/// Removes the payload now; the message stays, reading as `{}` with `payloadExpired`, and its
/// deliveries still waiting are cancelled (there is nothing left to send).
#[utoipa::path(
    delete,
    path = "/api/v1/app/{app_id}/msg/{msg_id}/content",
    tag = "Message",
    operation_id = "v1.message.expunge-content",
    summary = "Delete a message's payload",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("msg_id" = String, Path, description = "The message's id or eventId")),
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn expunge_content(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (app, message) = load(&state, &principal, &app_id, &msg_id).await?;
    if !state.store.expunge_payload(&app.id, &message.id).await? {
        return Err(ApiError::not_found("message"));
    }
    Ok(StatusCode::NO_CONTENT)
}
