//! The delivery log: messages, their deliveries and attempts, resend; and the event catalog.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::endpoints::{catalog as live_types, example_of, newest_schema, status_label};
use super::pages::{code_spans, form_time, render, see_other, shown_body, when, Chrome, CsrfForm};
use super::session::PortalSession;
use super::{OrPage, PageResult, PortalError};
use crate::api::attempts as api_attempts;
use crate::api::auth::{PortalCapability, Principal};
use crate::api::error::ApiError;
use crate::api::extract::Path;
use crate::api::AppState;
use crate::domain::ids::{AppId, AttemptId, MessageId};
use crate::domain::time::parse_rfc3339;
use crate::store::{AttemptFilter, DeliveryStatus, Message, MessageFilter, Order, PageRequest};

const PAGE_SIZE: usize = 25;

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    iterator: String,
}

pub struct MessageRow {
    pub id: String,
    /// What became of the message's deliveries, in a word.
    pub status: &'static str,
    pub status_class: &'static str,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub created: String,
}

#[derive(Template)]
#[template(path = "portal/messages.html")]
pub struct MessagesPage {
    pub chrome: Chrome,
    pub title: String,
    pub query: LogQuery,
    pub event_types: Vec<String>,
    pub rows: Vec<MessageRow>,
    pub older: Option<String>,
    pub filtered: bool,
}

/// A filter's time (UTC) as unix ms.
fn local_time(text: &str, field: &str) -> Result<Option<i64>, ApiError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    form_time(text)
        .or_else(|| parse_rfc3339(text.trim()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                &["query", field],
                "must be a date and time like 2026-12-06 14:00 (UTC)",
            )
        })
}

impl LogQuery {
    fn filter(&self) -> Result<MessageFilter, ApiError> {
        let statuses = match self.status.as_str() {
            "" => None,
            "failed" => Some(vec![DeliveryStatus::Failed, DeliveryStatus::Canceled]),
            "pending" => Some(vec![
                DeliveryStatus::Pending,
                DeliveryStatus::Sending,
                DeliveryStatus::Held,
            ]),
            "delivered" => Some(vec![DeliveryStatus::Success]),
            _ => return Err(ApiError::invalid(&["query", "status"], "is not a status")),
        };
        Ok(MessageFilter {
            event_types: (!self.event_type.is_empty()).then(|| vec![self.event_type.clone()]),
            after: local_time(&self.since, "since")?,
            before: local_time(&self.until, "until")?,
            ordering_key: (!self.key.trim().is_empty()).then(|| self.key.trim().to_string()),
            delivery_statuses: statuses,
            ..MessageFilter::default()
        })
    }

    /// This query's URL with another page iterator.
    fn with_iterator(&self, iterator: &str) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &self.status),
            ("event_type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
            ("key", &self.key),
        ] {
            if !value.is_empty() {
                url.append_pair(name, value);
            }
        }
        url.append_pair("iterator", iterator);
        format!("/portal/messages?{}", url.finish())
    }
}

/// `GET /portal/messages`: the application's messages, newest first, filtered.
pub async fn messages(
    State(state): State<AppState>,
    session: PortalSession,
    Query(query): Query<LogQuery>,
) -> PageResult {
    let filter = query.filter().or_page(&state)?;
    let page = PageRequest {
        limit: PAGE_SIZE + 1,
        cursor: (!query.iterator.is_empty()).then(|| query.iterator.clone()),
        backwards: false,
        order: Order::Descending,
    };
    if !query.iterator.is_empty() && !crate::domain::ids::is_well_formed_id(&query.iterator) {
        return Err(
            PortalError::Api(ApiError::invalid(&["query", "iterator"], "is not valid"))
                .into_page(&state),
        );
    }
    let mut found: Vec<Message> = state
        .store
        .list_messages(&session.app_id, &filter, &page)
        .await
        .or_page(&state)?;
    let older = (found.len() > PAGE_SIZE).then(|| {
        found.truncate(PAGE_SIZE);
        query.with_iterator(&found[PAGE_SIZE - 1].id)
    });
    let mut rows = Vec::with_capacity(found.len());
    for m in found {
        let deliveries = state
            .store
            .list_message_deliveries(&session.app_id, &m.id, &PageRequest::newest(100))
            .await
            .or_page(&state)?;
        let (status, status_class) = summary(deliveries.iter().map(|(_, d)| d.status));
        rows.push(MessageRow {
            created: when(m.created_at),
            id: m.id.into(),
            event_type: m.event_type.into(),
            ordering_key: m.ordering_key.map(String::from),
            status,
            status_class,
        });
    }
    let event_types = live_types(&state)
        .await?
        .into_iter()
        .map(|t| t.name.into())
        .collect();
    let filtered = filter.event_types.is_some()
        || filter.after.is_some()
        || filter.before.is_some()
        || filter.ordering_key.is_some()
        || filter.delivery_statuses.is_some();
    Ok(render(
        &MessagesPage {
            chrome: Chrome::new(&state, &session, "messages"),
            title: "Delivery log".into(),
            rows,
            query,
            event_types,
            older,
            filtered,
        },
        StatusCode::OK,
    ))
}

/// A message's deliveries in a word: failed if any failed, else retrying if any has work left,
/// else delivered.
pub(crate) fn summary(
    statuses: impl Iterator<Item = DeliveryStatus>,
) -> (&'static str, &'static str) {
    let (mut any, mut failed, mut waiting) = (false, false, false);
    for status in statuses {
        any = true;
        match status {
            DeliveryStatus::Failed | DeliveryStatus::Canceled => failed = true,
            DeliveryStatus::Pending | DeliveryStatus::Sending | DeliveryStatus::Held => {
                waiting = true
            }
            DeliveryStatus::Success => {}
        }
    }
    match (any, failed, waiting) {
        (false, _, _) => ("No endpoint", "wait"),
        (_, true, _) => ("Failed", "bad"),
        (_, _, true) => ("Retrying", "wait"),
        _ => ("Delivered", "ok"),
    }
}

pub struct MessageDelivery {
    pub endpoint_id: String,
    pub url: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub next_attempt: Option<String>,
}

pub struct AttemptRow {
    pub id: String,
    pub url: String,
    /// Why no HTTP answer came (refused, timed out, blocked), for attempts without one.
    pub reason: Option<String>,
    pub created: String,
    pub status_code: i64,
    pub success: bool,
    pub duration_ms: i64,
}

#[derive(Template)]
#[template(path = "portal/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: Message,
    pub created: String,
    pub payload: String,
    pub payload_cut: bool,
    pub deliveries: Vec<MessageDelivery>,
    pub attempts: Vec<AttemptRow>,
}

async fn load_message(
    state: &AppState,
    session: &PortalSession,
    msg_id: &str,
) -> Result<Message, axum::response::Response> {
    state
        .store
        .get_message(&session.app_id, msg_id)
        .await
        .or_page(state)?
        .ok_or(PortalError::NotFound("message"))
        .or_page(state)
}

/// Where a message went and every attempt, as the message page shows them (the operator
/// dashboard shows the same).
pub(crate) async fn message_details(
    state: &AppState,
    app_id: &AppId,
    msg_id: &MessageId,
) -> Result<(Vec<MessageDelivery>, Vec<AttemptRow>), axum::response::Response> {
    let deliveries: Vec<MessageDelivery> = state
        .store
        .list_message_deliveries(app_id, msg_id, &PageRequest::newest(100))
        .await
        .or_page(state)?
        .into_iter()
        .map(|(endpoint, delivery)| {
            let (status, status_class) = status_label(delivery.status);
            MessageDelivery {
                endpoint_id: endpoint.id.into(),
                url: endpoint.url,
                status,
                status_class,
                next_attempt: delivery.next_attempt_at.map(when),
            }
        })
        .collect();
    let filter = AttemptFilter {
        msg_id: Some(msg_id.clone()),
        ..AttemptFilter::default()
    };
    let attempts: Vec<AttemptRow> = state
        .store
        .list_attempts(app_id, &filter, &PageRequest::newest(100))
        .await
        .or_page(state)?
        .into_iter()
        .map(|a| AttemptRow {
            created: when(a.created_at),
            id: a.id.into(),
            reason: (a.response_status_code == 0).then(|| a.response.chars().take(80).collect()),
            url: a.url,
            status_code: a.response_status_code,
            success: a.success,
            duration_ms: a.response_duration_ms,
        })
        .collect();
    Ok((deliveries, attempts))
}

/// `GET /portal/messages/{id}`: the payload, where it went and every attempt.
pub async fn message(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(msg_id): axum::extract::Path<String>,
) -> PageResult {
    let message = load_message(&state, &session, &msg_id).await?;
    let (deliveries, attempts) = message_details(&state, &session.app_id, &message.id).await?;
    let (payload, payload_cut) = shown_body(&message.payload);
    Ok(render(
        &MessagePage {
            chrome: Chrome::new(&state, &session, "messages"),
            title: format!("Message {}", message.id),
            created: when(message.created_at),
            payload,
            payload_cut,
            message,
            deliveries,
            attempts,
        },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "portal/attempt.html")]
pub struct AttemptPage {
    pub chrome: Chrome,
    pub title: String,
    pub attempt: crate::store::Attempt,
    pub created: String,
    pub message: Message,
    pub request_headers: Vec<(String, String)>,
    pub body: String,
    pub body_cut: bool,
    pub response: String,
    pub response_cut: bool,
    pub next_attempt: Option<String>,
}

/// `GET /portal/messages/{id}/attempts/{attempt}`: the request as sent and the answer.
pub async fn attempt(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path((msg_id, attempt_id)): axum::extract::Path<(String, String)>,
) -> PageResult {
    let message = load_message(&state, &session, &msg_id).await?;
    let attempt = state
        .store
        .get_attempt(&session.app_id, &message.id, &AttemptId::from(attempt_id))
        .await
        .or_page(&state)?
        .ok_or(PortalError::NotFound("attempt"))
        .or_page(&state)?;
    let endpoint = state
        .store
        .get_endpoint(&session.app_id, &attempt.endpoint_id)
        .await
        .or_page(&state)?;
    let next_attempt = state
        .store
        .list_message_deliveries(&session.app_id, &message.id, &PageRequest::newest(100))
        .await
        .or_page(&state)?
        .into_iter()
        .find(|(e, _)| e.id == attempt.endpoint_id)
        .and_then(|(_, d)| d.next_attempt_at)
        .map(when);
    let (id_header, timestamp_header, signature_header) = match state.signature_headers {
        crate::config::SignatureHeaders::Svix => ("svix-id", "svix-timestamp", "svix-signature"),
        _ => ("webhook-id", "webhook-timestamp", "webhook-signature"),
    };
    let mut request_headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (id_header.to_string(), message.id.to_string()),
        (
            timestamp_header.to_string(),
            (attempt.created_at / 1000).to_string(),
        ),
        (
            signature_header.to_string(),
            "v1,… (signed with your endpoint's secret)".to_string(),
        ),
    ];
    if let Some(endpoint) = &endpoint {
        request_headers.extend(endpoint.headers.clone());
    }
    let (body, body_cut) = shown_body(&message.payload);
    let (response, response_cut) = shown_body(&attempt.response);
    Ok(render(
        &AttemptPage {
            chrome: Chrome::new(&state, &session, "messages"),
            title: format!("Attempt {}", attempt.id),
            created: when(attempt.created_at),
            attempt,
            message,
            request_headers,
            body,
            body_cut,
            response,
            response_cut,
            next_attempt,
        },
        StatusCode::OK,
    ))
}

/// `POST /portal/messages/{id}/resend/{endpoint}`: through the API's resend route.
pub async fn resend(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path((msg_id, endpoint_id)): axum::extract::Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    session
        .require(PortalCapability::CreateAttempts)
        .or_page(&state)?;
    session.check_csrf(&form.csrf).or_page(&state)?;
    let message = load_message(&state, &session, &msg_id).await?;
    api_attempts::resend(
        State(state.clone()),
        Principal::App(session.app_id.clone()),
        Path((
            session.app_id.to_string(),
            message.id.to_string(),
            endpoint_id,
        )),
    )
    .await
    .map(drop)
    .or_page(&state)?;
    Ok(see_other(
        &headers,
        &format!("/portal/messages/{}", message.id),
    ))
}

pub struct EventTypeView {
    pub name: String,
    pub description: Vec<(bool, String)>,
    pub deprecated: bool,
    pub schema: Option<String>,
    pub example: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/catalog.html")]
pub struct CatalogPage {
    pub chrome: Chrome,
    pub title: String,
    pub types: Vec<EventTypeView>,
}

/// `GET /portal/event-types`: what the merchant can subscribe to.
pub async fn catalog(State(state): State<AppState>, session: PortalSession) -> PageResult {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let types = live_types(&state)
        .await?
        .into_iter()
        .map(|t| EventTypeView {
            schema: newest_schema(&t).map(pretty),
            example: example_of(&t).map(pretty),
            name: t.name.into(),
            description: code_spans(&t.description),
            deprecated: t.deprecated,
        })
        .collect();
    Ok(render(
        &CatalogPage {
            chrome: Chrome::new(&state, &session, "catalog"),
            title: "Event catalog".into(),
            types,
        },
        StatusCode::OK,
    ))
}
