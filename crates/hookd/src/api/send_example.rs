//! `POST …/endpoint/{id}/send-example`: a real message with an event type's example payload,
//! sent to that one endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Principal;
use super::endpoints;
use super::error::{ApiError, ErrorResponses};
use super::extract::{Json, Path};
use super::messages::MessageOut;
use super::AppState;
use crate::catalog;
use crate::domain::time::now_millis;
use crate::domain::EventTypeName;
use crate::store::{Message, DEFAULT_PAYLOAD_RETENTION_MS};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
        post(send_example),
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    event_type: EventTypeName,
    /// Which of the schema's `examples` to send (default 0); ignored when it lists none.
    example_index: Option<usize>,
}

/// The example of an event type: the built-in payment catalog's (stamped now), else the
/// `examples` entry of its newest schema (the first unless `index` says otherwise), else `{}`.
/// An event type that is neither built in nor in the catalog is refused.
async fn example_payload(
    state: &AppState,
    name: &str,
    index: Option<usize>,
) -> Result<Value, ApiError> {
    if let Some(entry) = catalog::entry(name) {
        return Ok(catalog::example(entry));
    }
    let event_type = state.store.get_event_type(name).await?.ok_or_else(|| {
        ApiError::invalid(
            &["body", "eventType"],
            format!("event type {name:?} does not exist"),
        )
    })?;
    let Some(examples) = event_type
        .schemas
        .as_ref()
        .and_then(catalog::schema_examples)
        .filter(|examples| !examples.is_empty())
    else {
        return Ok(json!({}));
    };
    let example = examples.get(index.unwrap_or(0)).ok_or_else(|| {
        ApiError::invalid(
            &["body", "exampleIndex"],
            format!("the schema has {} examples", examples.len()),
        )
    })?;
    if !example.is_object() {
        return Err(ApiError::invalid(
            &["body", "exampleIndex"],
            "this example is not a JSON object, which a payload must be",
        ));
    }
    Ok(example.clone())
}

/// Sends the event type's example payload to this endpoint only, as a real message (listed,
/// signed, retried), whatever event types the endpoint subscribes to.
#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
    tag = "Endpoint",
    operation_id = "v1.endpoint.send-example",
    summary = "Send an example message to the endpoint",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    request_body = EventExampleIn,
    responses((status = 202, body = MessageOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn send_example(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    Json(input): Json<EventExampleIn>,
) -> Result<(StatusCode, axum::Json<MessageOut>), ApiError> {
    let (app, endpoint) = endpoints::load(&state, &principal, &app_id, &endpoint_id).await?;
    if endpoint.disabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it before sending to it",
        ));
    }
    let event_type = input.event_type;
    let payload = example_payload(&state, &event_type, input.example_index)
        .await?
        .to_string();
    let message = Message::new(
        app.id,
        event_type,
        payload.into(),
        now_millis(),
        DEFAULT_PAYLOAD_RETENTION_MS,
    );
    state
        .store
        .create_message_to(&message, &endpoint.id)
        .await?;
    if let Some(dispatch) = &state.dispatch {
        dispatch.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(MessageOut::new(message, true)),
    ))
}
