//! Endpoint pages: the list, the add/edit form, the detail page and its actions.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::pages::{bars, render, see_other, shown_at, when, Bar, Chrome};
use super::session::PortalSession;
use super::{OrPage, PageResult, PortalError};
use crate::api::auth::{PortalCapability, Principal};
use crate::api::error::{ApiError, FieldError};
use crate::api::extract::{parse, Json, Path};
use crate::api::{endpoints as api, recover, send_example, AppState};
use crate::domain::ids::{AppId, TaskId};
use crate::domain::time::{now_millis, rfc3339};
use crate::store::{Endpoint, EventType, Order, PageRequest};

use crate::store::activity::HOUR_MS;

pub(super) fn principal(session: &PortalSession) -> Principal {
    Principal::App(session.app_id.clone())
}

/// An endpoint of the session's application, or the not-found page.
pub(super) async fn load(
    state: &AppState,
    session: &PortalSession,
    endpoint_id: &str,
) -> Result<Endpoint, Response> {
    state
        .store
        .get_endpoint(&session.app_id, endpoint_id)
        .await
        .or_page(state)?
        .ok_or(PortalError::NotFound("endpoint"))
        .or_page(state)
}

/// The endpoint an action of the session is about, once the session may take that action
/// (capability, and the CSRF token when the form came with the cookie).
pub(super) async fn action_on(
    state: &AppState,
    session: &PortalSession,
    capability: PortalCapability,
    csrf: &str,
    endpoint_id: &str,
) -> Result<Endpoint, Response> {
    session.require(capability).or_page(state)?;
    session.check_csrf(csrf).or_page(state)?;
    load(state, session, endpoint_id).await
}

/// One endpoint as the list shows it.
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub failing_since: Option<String>,
    pub success_rate: Option<String>,
    pub attempts: u64,
    pub bars: Vec<Bar>,
}

#[derive(Template)]
#[template(path = "portal/endpoints.html")]
pub struct EndpointsPage {
    pub chrome: Chrome,
    pub title: String,
    pub rows: Vec<EndpointRow>,
    pub notice: Option<&'static str>,
}

/// Endpoints of an application with their last 24 hours, as the list shows them (the
/// operator dashboard's application page shows the same).
pub(crate) async fn endpoint_rows(
    state: &AppState,
    app_id: &AppId,
    endpoints: Vec<Endpoint>,
) -> Result<Vec<EndpointRow>, Response> {
    let since = (now_millis() / HOUR_MS - 23) * HOUR_MS;
    let mut rows = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let activity = state
            .store
            .endpoint_activity(app_id, &endpoint.id, since)
            .await
            .or_page(state)?;
        let mut counts = vec![(0u64, 0u64); 24];
        for bucket in &activity.buckets {
            if let Some(slot) = usize::try_from(bucket.index)
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *slot = (bucket.succeeded, bucket.failed);
            }
        }
        let (ok, failed) = counts
            .iter()
            .fold((0, 0), |(a, b), (ok, fail)| (a + ok, b + fail));
        let attempts = ok + failed;
        rows.push(EndpointRow {
            success_rate: (attempts > 0)
                .then(|| format!("{:.0}%", ok as f64 * 100.0 / attempts as f64)),
            attempts,
            bars: bars(&counts, |i| {
                when(since + i64::try_from(i).unwrap_or(0) * HOUR_MS)[11..16].to_string()
            }),
            failing_since: activity.failing_since.map(when),
            id: endpoint.id.into(),
            url: endpoint.url,
            description: endpoint.description,
            disabled: endpoint.disabled,
        });
    }
    Ok(rows)
}

#[derive(Deserialize, Default)]
pub struct Notice {
    done: Option<String>,
    task: Option<String>,
}

/// Messages shown after a change, chosen by a fixed word (nothing from the URL is echoed).
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some("The endpoint is added. Send it a test event to check that it works."),
        "updated" => Some("Your changes are saved."),
        "deleted" => Some("The endpoint is deleted. It will receive nothing more."),
        "enabled" => Some("The endpoint is enabled: new events will be delivered to it."),
        "disabled" => {
            Some("The endpoint is disabled: nothing is delivered to it until you enable it.")
        }
        "recover" => Some("Recovery started: failed messages are being sent again."),
        _ => None,
    }
}

/// `GET /portal/`: the application's endpoints with their last 24 hours.
pub async fn list(
    State(state): State<AppState>,
    session: PortalSession,
    Query(query): Query<Notice>,
) -> PageResult {
    let endpoints = state
        .store
        .list_endpoints(&session.app_id, &PageRequest::newest(250))
        .await
        .or_page(&state)?;
    let rows = endpoint_rows(&state, &session.app_id, endpoints).await?;
    Ok(render(
        &EndpointsPage {
            chrome: Chrome::new(&state, &session, "endpoints"),
            title: "Endpoints".into(),
            rows,
            notice: notice(query.done.as_deref()),
        },
        StatusCode::OK,
    ))
}

/// An event type as the form offers it.
pub struct EventTypeChoice {
    pub name: String,
    pub description: Vec<(bool, String)>,
    pub checked: bool,
    pub schema: Option<String>,
    pub example: Option<String>,
}

/// The form's values, as typed.
#[derive(Default)]
pub struct EndpointForm {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub channels: String,
    pub throttle_rate: String,
    pub headers: String,
}

impl EndpointForm {
    fn from_endpoint(endpoint: &Endpoint) -> Self {
        Self {
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            event_types: endpoint
                .event_types
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect(),
            channels: endpoint.channels.clone().unwrap_or_default().join(", "),
            throttle_rate: endpoint
                .throttle_rate
                .map(|r| r.to_string())
                .unwrap_or_default(),
            headers: endpoint
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn from_body(body: &[u8]) -> (Self, String) {
        let mut form = Self::default();
        let mut csrf = String::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            match &*name {
                "url" => form.url = value.trim().to_string(),
                "description" => form.description = value.to_string(),
                "event_types" => form.event_types.push(value.to_string()),
                "channels" => form.channels = value.to_string(),
                "throttle_rate" => form.throttle_rate = value.trim().to_string(),
                "headers" => form.headers = value.to_string(),
                "csrf" => csrf = value.to_string(),
                _ => {}
            }
        }
        (form, csrf)
    }

    fn channels(&self) -> Option<Vec<String>> {
        let channels: Vec<String> = self
            .channels
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        (!channels.is_empty()).then_some(channels)
    }

    /// `Name: value` lines as a map; a line without a colon is an error on the field.
    fn headers(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let mut headers = BTreeMap::new();
        for line in self
            .headers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let Some((name, value)) = line.split_once(':') else {
                return Err(ApiError::invalid(
                    &["body", "headers"],
                    format!("{line:?} is not a header line like `X-Name: value`"),
                ));
            };
            headers.insert(name.trim().to_string(), value.trim().to_string());
        }
        Ok(headers)
    }

    fn throttle_rate(&self) -> Result<Value, ApiError> {
        if self.throttle_rate.is_empty() {
            return Ok(Value::Null);
        }
        self.throttle_rate
            .parse::<u16>()
            .map(Value::from)
            .map_err(|_| {
                ApiError::invalid(
                    &["body", "throttleRate"],
                    "must be a whole number of messages per second, from 1 to 65535",
                )
            })
    }

    /// The API body the form stands for: the API decides what is valid.
    fn to_json(&self, with_headers: bool) -> Result<Value, ApiError> {
        let mut body = json!({
            "url": self.url,
            "description": self.description,
            "eventTypes": (!self.event_types.is_empty()).then_some(&self.event_types),
            "channels": self.channels(),
            "throttleRate": self.throttle_rate()?,
        });
        if with_headers {
            body["headers"] = json!(self.headers()?);
        }
        Ok(body)
    }
}

#[derive(Template)]
#[template(path = "portal/endpoint_form.html")]
pub struct EndpointFormPage {
    pub chrome: Chrome,
    pub title: String,
    pub action: String,
    pub cancel: String,
    pub form: EndpointForm,
    pub choices: Vec<EventTypeChoice>,
    pub errors: BTreeMap<String, String>,
    pub problem: Option<String>,
}

impl EndpointFormPage {
    pub fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

/// The catalog's live event types, as the form offers them.
async fn choices(state: &AppState, checked: &[String]) -> Result<Vec<EventTypeChoice>, Response> {
    let types = catalog(state).await?;
    Ok(types
        .into_iter()
        .map(|t| EventTypeChoice {
            checked: checked.iter().any(|c| c == t.name.as_str()),
            schema: newest_schema(&t).map(pretty),
            example: example_of(&t).map(pretty),
            name: t.name.into(),
            description: super::pages::code_spans(&t.description),
        })
        .collect())
}

pub async fn catalog(state: &AppState) -> Result<Vec<EventType>, Response> {
    let page = PageRequest {
        limit: 250,
        cursor: None,
        backwards: false,
        order: Order::Ascending,
    };
    state
        .store
        .list_event_types(&page, false)
        .await
        .or_page(state)
}

/// The newest version of an event type's schema.
pub fn newest_schema(event_type: &EventType) -> Option<&Value> {
    crate::catalog::newest_schema(event_type.schemas.as_ref()?)
}

/// The first example of an event type's newest schema.
pub fn example_of(event_type: &EventType) -> Option<&Value> {
    crate::catalog::schema_examples(event_type.schemas.as_ref()?)?.first()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The field an API validation error names (`["body", "url"]` → `url`).
fn field_errors(errors: &[FieldError]) -> BTreeMap<String, String> {
    errors
        .iter()
        .map(|e| {
            let field = e.loc.get(1).cloned().unwrap_or_default();
            (field, super::capitalize(&e.msg))
        })
        .collect()
}

async fn form_page(
    state: &AppState,
    session: &PortalSession,
    action: String,
    cancel: String,
    form: EndpointForm,
    failure: Option<ApiError>,
) -> PageResult {
    // After a failed save the address bar shows the form's own page, which reloads.
    let page_url = if action.ends_with("/endpoints") {
        "/portal/endpoints/new".to_string()
    } else {
        format!("{action}/edit")
    };
    let choices = choices(state, &form.event_types).await?;
    let (status, errors, problem) = match failure {
        None => (StatusCode::OK, BTreeMap::new(), None),
        Some(err) if !err.field_errors().is_empty() => {
            (err.status(), field_errors(err.field_errors()), None)
        }
        Some(err) if err.status().is_server_error() => {
            return Err(PortalError::Api(err).into_page(state))
        }
        Some(err) => (err.status(), BTreeMap::new(), Some(err.message())),
    };
    let title = if action.ends_with("/endpoints") {
        "Add an endpoint"
    } else {
        "Edit endpoint"
    };
    let page = render(
        &EndpointFormPage {
            chrome: Chrome::new(state, session, "endpoints"),
            title: title.into(),
            action,
            cancel,
            form,
            choices,
            errors,
            problem,
        },
        status,
    );
    Ok(shown_at(page, &page_url))
}

/// `GET /portal/endpoints/new`.
pub async fn new_form(State(state): State<AppState>, session: PortalSession) -> PageResult {
    session
        .require(PortalCapability::ManageEndpoint)
        .or_page(&state)?;
    form_page(
        &state,
        &session,
        "/portal/endpoints".into(),
        "/portal/".into(),
        EndpointForm::default(),
        None,
    )
    .await
}

/// `POST /portal/endpoints`: adds an endpoint through the API's own handler.
pub async fn create(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    session
        .require(PortalCapability::ManageEndpoint)
        .or_page(&state)?;
    let (form, csrf) = EndpointForm::from_body(&body);
    session.check_csrf(&csrf).or_page(&state)?;
    let created = async {
        let input = parse(form.to_json(true)?.to_string().as_bytes())?;
        api::create(
            State(state.clone()),
            principal(&session),
            Path(session.app_id.to_string()),
            Json(input),
        )
        .await
    }
    .await;
    match created {
        Ok((_, out)) => Ok(see_other(
            &headers,
            &format!("/portal/endpoints/{}?done=created", out.0.id),
        )),
        Err(err) => {
            form_page(
                &state,
                &session,
                "/portal/endpoints".into(),
                "/portal/".into(),
                form,
                Some(err),
            )
            .await
        }
    }
}

/// `GET /portal/endpoints/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
) -> PageResult {
    session
        .require(PortalCapability::ManageEndpoint)
        .or_page(&state)?;
    let endpoint = load(&state, &session, &endpoint_id).await?;
    form_page(
        &state,
        &session,
        format!("/portal/endpoints/{}", endpoint.id),
        format!("/portal/endpoints/{}", endpoint.id),
        EndpointForm::from_endpoint(&endpoint),
        None,
    )
    .await
}

/// `POST /portal/endpoints/{id}`: saves the form through the API's patch and headers routes.
pub async fn update(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    body: Bytes,
) -> PageResult {
    session
        .require(PortalCapability::ManageEndpoint)
        .or_page(&state)?;
    let endpoint = load(&state, &session, &endpoint_id).await?;
    let (form, csrf) = EndpointForm::from_body(&body);
    session.check_csrf(&csrf).or_page(&state)?;
    let path = Path((session.app_id.to_string(), endpoint.id.to_string()));
    let saved = async {
        // Both parts are checked before either is saved, so a bad header line changes nothing.
        let patch = parse(form.to_json(false)?.to_string().as_bytes())?;
        let new_headers = parse(json!({ "headers": form.headers()? }).to_string().as_bytes())?;
        api::patch(
            State(state.clone()),
            principal(&session),
            HeaderMap::new(),
            Path(path.0.clone()),
            Json(patch),
        )
        .await
        .map(drop)?;
        api::replace_headers(
            State(state.clone()),
            principal(&session),
            path,
            Json(new_headers),
        )
        .await
    }
    .await;
    match saved {
        Ok(_) => Ok(see_other(
            &headers,
            &format!("/portal/endpoints/{}?done=updated", endpoint.id),
        )),
        Err(err) => {
            let target = format!("/portal/endpoints/{}", endpoint.id);
            form_page(&state, &session, target.clone(), target, form, Some(err)).await
        }
    }
}

/// A delivery of the endpoint as its page lists it.
pub struct DeliveryRow {
    pub msg_id: String,
    pub event_type: String,
    pub created: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub next_attempt: Option<String>,
}

/// A recovery as the page shows it.
pub struct TaskView {
    pub id: String,
    pub status: &'static str,
    pub done: u64,
    pub running: bool,
}

/// How the merchant's code reads the signature headers.
pub struct Snippets {
    pub id_header: &'static str,
    pub timestamp_header: &'static str,
    pub signature_header: &'static str,
}

#[derive(Template)]
#[template(path = "portal/endpoint.html")]
pub struct EndpointPage {
    pub chrome: Chrome,
    pub title: String,
    pub endpoint: Endpoint,
    /// When its current run of failures began.
    pub failing_since: Option<String>,
    pub event_types: String,
    pub secret: Option<String>,
    pub rotated: bool,
    pub test_types: Vec<String>,
    pub deliveries: Vec<DeliveryRow>,
    pub task: Option<TaskView>,
    pub notice: Option<&'static str>,
    pub snippets: Snippets,
    pub recover_default: String,
    /// The endpoint signs with Ed25519: its owner sees a public key and other code samples.
    pub v1a: bool,
    /// The newest "check my endpoint" report.
    pub latest_check: Option<super::checks::ReportView>,
}

/// Labels for a delivery state, as a merchant reads them.
pub fn status_label(status: crate::store::DeliveryStatus) -> (&'static str, &'static str) {
    use crate::store::DeliveryStatus::*;
    match status {
        Success => ("Delivered", "ok"),
        Pending | Held => ("Retrying", "wait"),
        Sending => ("Sending", "wait"),
        Failed => ("Failed", "bad"),
        Canceled => ("Canceled", "bad"),
    }
}

async fn endpoint_page(
    state: &AppState,
    session: &PortalSession,
    endpoint: Endpoint,
    secret: Option<String>,
    rotated: bool,
    query: Notice,
) -> PageResult {
    let deliveries = state
        .store
        .list_endpoint_deliveries(&session.app_id, &endpoint.id, &PageRequest::newest(20))
        .await
        .or_page(state)?
        .into_iter()
        .map(|(message, delivery)| {
            let (status, status_class) = status_label(delivery.status);
            DeliveryRow {
                created: when(message.created_at),
                msg_id: message.id.into(),
                event_type: message.event_type.into(),
                status,
                status_class,
                next_attempt: delivery.next_attempt_at.map(when),
            }
        })
        .collect();
    let task = match query.task.as_deref() {
        Some(task_id) => state
            .store
            .get_task(&TaskId::from(task_id))
            .await
            .or_page(state)?
            .filter(|task| task.app_id == session.app_id && task.endpoint_id == endpoint.id)
            .map(|task| TaskView {
                id: task.id.into(),
                status: task.status.as_str(),
                done: task.done,
                running: task.status == crate::store::TaskStatus::Running,
            }),
        None => None,
    };
    let failing_since = state
        .store
        .endpoint_activity(&session.app_id, &endpoint.id, now_millis())
        .await
        .or_page(state)?
        .failing_since
        .map(when);
    let test_types = match &endpoint.event_types {
        Some(types) => types.iter().map(ToString::to_string).collect(),
        None => catalog(state)
            .await?
            .into_iter()
            .map(|t| t.name.into())
            .collect(),
    };
    let (id_header, timestamp_header, signature_header) = match state.signature_headers {
        crate::config::SignatureHeaders::Svix => ("svix-id", "svix-timestamp", "svix-signature"),
        _ => ("webhook-id", "webhook-timestamp", "webhook-signature"),
    };
    let latest_check = super::checks::latest(state, &endpoint)
        .await
        .or_page(state)?;
    Ok(render(
        &EndpointPage {
            v1a: endpoint.secret.scheme() == hookd_signing::Scheme::V1a,
            latest_check,
            chrome: Chrome::new(state, session, "endpoints"),
            title: endpoint.url.clone(),
            event_types: endpoint
                .event_types
                .as_ref()
                .map_or_else(|| "every event type".to_string(), |t| t.join(", ")),
            endpoint,
            failing_since,
            secret,
            rotated,
            test_types,
            deliveries,
            task,
            notice: notice(query.done.as_deref()),
            snippets: Snippets {
                id_header,
                timestamp_header,
                signature_header,
            },
            recover_default: super::pages::form_time_text(now_millis() - 24 * HOUR_MS),
        },
        StatusCode::OK,
    ))
}

/// `GET /portal/endpoints/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    Query(query): Query<Notice>,
) -> PageResult {
    let endpoint = load(&state, &session, &endpoint_id).await?;
    endpoint_page(&state, &session, endpoint, None, false, query).await
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    since: String,
    /// A rotation's new signature scheme (`v1`, `v1a`); empty keeps the current one.
    #[serde(default)]
    scheme: String,
}

/// `POST /portal/endpoints/{id}/secret`: shows the signing secret, through the API's route.
pub async fn reveal_secret(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::ViewEndpointSecret,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    let secret = api::read_secret(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
    )
    .await
    .or_page(&state)?;
    let page_url = format!("/portal/endpoints/{}", endpoint.id);
    endpoint_page(
        &state,
        &session,
        endpoint,
        Some(secret.0.key),
        false,
        Notice::default(),
    )
    .await
    .map(|page| shown_at(page, &page_url))
}

/// `POST /portal/endpoints/{id}/rotate`: a new secret, or a key of the other scheme when the
/// form names one; the old one keeps signing for the API's default grace period.
pub async fn rotate_secret(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::ManageEndpointSecret,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    let rotated = api::rotate_secret(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
        Json(api::RotateIn {
            signature_scheme: (!form.scheme.is_empty()).then_some(form.scheme),
            ..api::RotateIn::default()
        }),
    )
    .await
    .or_page(&state)?;
    let shown = session
        .can(PortalCapability::ViewEndpointSecret)
        .then_some(rotated.0.key);
    let endpoint = load(&state, &session, &endpoint_id).await?;
    let page_url = format!("/portal/endpoints/{}", endpoint.id);
    endpoint_page(&state, &session, endpoint, shown, true, Notice::default())
        .await
        .map(|page| shown_at(page, &page_url))
}

async fn set_disabled(
    state: AppState,
    session: PortalSession,
    headers: HeaderMap,
    endpoint_id: String,
    form: ActionForm,
    disabled: bool,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::ManageEndpoint,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    api::patch(
        State(state.clone()),
        principal(&session),
        HeaderMap::new(),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
        Json(parse(json!({ "disabled": disabled }).to_string().as_bytes()).or_page(&state)?),
    )
    .await
    .map(drop)
    .or_page(&state)?;
    let done = if disabled { "disabled" } else { "enabled" };
    Ok(see_other(
        &headers,
        &format!("/portal/endpoints/{}?done={done}", endpoint.id),
    ))
}

/// `POST /portal/endpoints/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    set_disabled(state, session, headers, endpoint_id, form, false).await
}

/// `POST /portal/endpoints/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    set_disabled(state, session, headers, endpoint_id, form, true).await
}

/// `POST /portal/endpoints/{id}/test`: sends the event type's example through the API's
/// send-example route and shows the message, where its attempts appear.
pub async fn send_test(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::CreateAttempts,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    let input = parse(
        json!({ "eventType": form.event_type })
            .to_string()
            .as_bytes(),
    )
    .or_page(&state)?;
    let (_, sent) = send_example::send_example(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
        Json(input),
    )
    .await
    .or_page(&state)?;
    Ok(see_other(
        &headers,
        &format!("/portal/messages/{}", sent.0.id),
    ))
}

/// `POST /portal/endpoints/{id}/recover`: resends the failed messages since a time, as a
/// background task whose progress the endpoint page shows.
pub async fn recover(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::CreateAttempts,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    // The form's local date-time has no zone; the page says it is UTC.
    let since = super::pages::form_time(&form.since)
        .map(rfc3339)
        .ok_or_else(|| {
            ApiError::invalid(
                &["body", "since"],
                "must be a date and time like 2026-12-06 14:00 (UTC)",
            )
        })
        .or_page(&state)?;
    let input = parse(json!({ "since": since }).to_string().as_bytes()).or_page(&state)?;
    let (_, task) = recover::recover(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
        Json(input),
    )
    .await
    .or_page(&state)?;
    Ok(see_other(
        &headers,
        &format!(
            "/portal/endpoints/{}?done=recover&task={}",
            endpoint.id, task.0.id
        ),
    ))
}

#[derive(Template)]
#[template(path = "portal/confirm_delete.html")]
pub struct ConfirmDeletePage {
    pub chrome: Chrome,
    pub title: String,
    pub endpoint: Endpoint,
}

/// `GET /portal/endpoints/{id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
) -> PageResult {
    session
        .require(PortalCapability::ManageEndpoint)
        .or_page(&state)?;
    let endpoint = load(&state, &session, &endpoint_id).await?;
    Ok(render(
        &ConfirmDeletePage {
            chrome: Chrome::new(&state, &session, "endpoints"),
            title: "Delete endpoint".into(),
            endpoint,
        },
        StatusCode::OK,
    ))
}

/// `POST /portal/endpoints/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<ActionForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::ManageEndpoint,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    api::remove(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.into())),
    )
    .await
    .or_page(&state)?;
    Ok(see_other(&headers, "/portal/?done=deleted"))
}
