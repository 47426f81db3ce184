//! Finding things: applications, endpoints by URL, and messages of every application — by id,
//! `eventId` or ordering key ("where is payment pay_123?"), event type, status and time — with
//! every delivery and attempt of what was found.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use super::pages::{
    form_time, not_found, shown_body, when, Chrome, OrProblem, PageResult, Problem,
};
use super::session::OperatorSession;
use crate::api::AppState;
use crate::domain::ids::{AppId, MessageId};
use crate::domain::time::now_millis;
use crate::portal::endpoints::{endpoint_rows, EndpointRow};
use crate::portal::log::{message_details, summary, AttemptRow, MessageDelivery};
use crate::portal::pages::render;
use crate::store::{
    Application, DeliveryStatus, Message, MessageFilter, MessageSearch, PageRequest,
};

const PAGE_SIZE: usize = 25;

/// A page of the newest items after `cursor` (none: the first page).
fn page_after(cursor: &str) -> PageRequest {
    PageRequest {
        cursor: (!cursor.is_empty()).then(|| cursor.to_string()),
        ..PageRequest::newest(PAGE_SIZE)
    }
}

/// The cursor of the next page, when the query fetched one row more than a page.
fn next_cursor<T>(rows: &mut Vec<T>, id: impl Fn(&T) -> &str) -> Option<String> {
    if rows.len() > PAGE_SIZE {
        rows.truncate(PAGE_SIZE);
        rows.last().map(|last| id(last).to_string())
    } else {
        None
    }
}

#[derive(Deserialize, Default)]
pub struct AppsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "dashboard/apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub title: String,
    pub q: String,
    pub apps: Vec<(Application, String)>,
    pub next: Option<String>,
}

/// `GET /ui/apps?q=`: applications by id, uid or name.
pub async fn apps(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<AppsQuery>,
) -> PageResult {
    let q = query.q.trim().to_string();
    let mut found = state
        .store
        .search_apps(&q, &page_after(&query.after))
        .await
        .or_problem()?;
    let next = next_cursor(&mut found, |a| &a.id);
    Ok(render(
        &AppsPage {
            chrome: Chrome::new(&session, "apps"),
            title: "Applications".into(),
            q,
            apps: found
                .into_iter()
                .map(|a| {
                    let created = when(a.created_at);
                    (a, created)
                })
                .collect(),
            next,
        },
        StatusCode::OK,
    ))
}

/// A recent message as lists show it.
pub struct MessageRow {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub event_id: Option<String>,
    pub created: String,
    pub status: String,
    pub status_class: &'static str,
}

/// A message's deliveries in a few words for an operator: the portal's word, except that a
/// message some endpoints got and others did not says how many failed ("1 of 2 failed").
fn overall(statuses: impl Iterator<Item = DeliveryStatus> + Clone) -> (String, &'static str) {
    let failed = statuses
        .clone()
        .filter(|s| matches!(s, DeliveryStatus::Failed | DeliveryStatus::Canceled))
        .count();
    let total = statuses.clone().count();
    let (word, class) = summary(statuses);
    if failed > 0 && failed < total {
        return (format!("{failed} of {total} failed"), class);
    }
    (word.to_string(), class)
}

async fn message_rows(
    state: &AppState,
    messages: Vec<Message>,
) -> Result<Vec<MessageRow>, Response> {
    let mut rows = Vec::with_capacity(messages.len());
    for m in messages {
        let deliveries = state
            .store
            .list_message_deliveries(&m.app_id, &m.id, &page_after(""))
            .await
            .or_problem()?;
        let (status, status_class) = overall(deliveries.iter().map(|(_, d)| d.status));
        rows.push(MessageRow {
            created: when(m.created_at),
            id: m.id,
            app_id: m.app_id,
            event_type: m.event_type.to_string(),
            ordering_key: m.ordering_key.map(|k| k.to_string()),
            event_id: m.event_id.map(|e| e.to_string()),
            status,
            status_class,
        });
    }
    Ok(rows)
}

#[derive(Template)]
#[template(path = "dashboard/app.html")]
pub struct AppPage {
    pub chrome: Chrome,
    pub title: String,
    pub app: Application,
    pub created: String,
    pub endpoints: Vec<(EndpointRow, Option<i64>)>,
    pub messages: Vec<MessageRow>,
    pub portal_link: Option<String>,
    pub notice: Option<&'static str>,
    /// Default for the recover form: an hour ago.
    pub recover_since: String,
}

#[derive(Deserialize, Default)]
pub struct AppQuery {
    #[serde(default)]
    done: String,
}

async fn load_app(state: &AppState, app_id: &str) -> Result<Application, Response> {
    state
        .store
        .get_app(app_id)
        .await
        .or_problem()?
        .ok_or_else(|| not_found("application"))
}

async fn app_page(
    state: &AppState,
    session: &OperatorSession,
    app: Application,
    portal_link: Option<String>,
    done: &str,
) -> PageResult {
    let endpoints = state
        .store
        .list_endpoints(&app.id, &page_after(""))
        .await
        .or_problem()?;
    let limits: Vec<Option<i64>> = endpoints.iter().map(|e| e.throttle_rate).collect();
    let rows = endpoint_rows(state, &app.id, endpoints).await?;
    let search = MessageSearch {
        app_id: Some(app.id.clone()),
        ..MessageSearch::default()
    };
    let mut recent = state
        .store
        .search_messages(
            &search,
            &PageRequest {
                limit: 10,
                ..page_after("")
            },
        )
        .await
        .or_problem()?;
    recent.truncate(10);
    Ok(render(
        &AppPage {
            chrome: Chrome::new(session, "apps"),
            title: app.name.clone(),
            created: when(app.created_at),
            endpoints: rows.into_iter().zip(limits).collect(),
            messages: message_rows(state, recent).await?,
            portal_link,
            notice: super::actions::notice(done),
            recover_since: crate::portal::pages::form_time_text(now_millis() - 3_600_000),
            app,
        },
        StatusCode::OK,
    ))
}

/// `GET /ui/apps/{id}`: an application's endpoints with their health, its recent messages and
/// its merchant's portal link.
pub async fn app(
    State(state): State<AppState>,
    session: OperatorSession,
    Path(app_id): Path<String>,
    Query(query): Query<AppQuery>,
) -> PageResult {
    let app = load_app(&state, &app_id).await?;
    app_page(&state, &session, app, None, &query.done).await
}

#[derive(Deserialize)]
pub struct PortalLinkForm {
    #[serde(default)]
    csrf: String,
    /// Seconds.
    #[serde(default)]
    expiry: u64,
}

/// `POST /ui/apps/{id}/portal-link`: a one-time link into the merchant's portal, shown once.
pub async fn portal_link(
    State(state): State<AppState>,
    session: OperatorSession,
    Path(app_id): Path<String>,
    Form(form): Form<PortalLinkForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let app = load_app(&state, &app_id).await?;
    // The form offers these four; anything else is a forged or stale form, refused.
    let expiry = match form.expiry {
        3600 | 86_400 | 604_800 | 2_592_000 => form.expiry,
        _ => {
            return Err(Problem::from_api(crate::api::error::ApiError::invalid(
                &["body", "expiry"],
                "must be 1 hour, 1 day, 7 days or 30 days (3600, 86400, 604800 or 2592000)",
            )))
        }
    };
    let expires_at = now_millis() + i64::try_from(expiry * 1000).unwrap_or(0);
    let capabilities = crate::api::auth::PortalCapability::ALL
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let link = crate::api::auth::portal_link(&state, &app.id, expires_at, capabilities)
        .await
        .or_problem()?;
    super::actions::record(
        &state,
        &session,
        "portal_link.create",
        Some(&app.id),
        &app.id,
        &format!("expires {}", when(expires_at)),
    )
    .await?;
    app_page(&state, &session, app, Some(link), "").await
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub event_type: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub after: String,
}

/// A message found, with where it went and every attempt when the search named it exactly.
pub struct Found {
    pub row: MessageRow,
    pub deliveries: Vec<MessageDelivery>,
    pub attempts: Vec<AttemptRow>,
}

#[derive(Template)]
#[template(path = "dashboard/search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    pub title: String,
    pub query: SearchQuery,
    pub event_types: Vec<String>,
    pub found: Vec<Found>,
    pub next: Option<String>,
    pub searched: bool,
    pub error: Option<&'static str>,
}

fn status_filter(status: &str) -> Option<Vec<DeliveryStatus>> {
    match status {
        "failed" => Some(vec![DeliveryStatus::Failed, DeliveryStatus::Canceled]),
        "pending" => Some(vec![
            DeliveryStatus::Pending,
            DeliveryStatus::Sending,
            DeliveryStatus::Held,
        ]),
        "delivered" => Some(vec![DeliveryStatus::Success]),
        _ => None,
    }
}

/// `GET /ui/search`: messages of every application.
pub async fn search(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<SearchQuery>,
) -> PageResult {
    let text = query.q.trim();
    let since = form_time(&query.since);
    let until = form_time(&query.until);
    let error = ((!query.since.trim().is_empty() && since.is_none())
        || (!query.until.trim().is_empty() && until.is_none()))
    .then_some("Times are UTC, written like 2026-12-06 14:00.");
    let search = MessageSearch {
        app_id: (!query.app.trim().is_empty()).then(|| AppId::from(query.app.trim())),
        text: (!text.is_empty()).then(|| text.to_string()),
        filter: MessageFilter {
            event_types: (!query.event_type.is_empty()).then(|| vec![query.event_type.clone()]),
            after: since,
            before: until,
            delivery_statuses: status_filter(&query.status),
            ..MessageFilter::default()
        },
    };
    let mut messages = state
        .store
        .search_messages(&search, &page_after(&query.after))
        .await
        .or_problem()?;
    let next = next_cursor(&mut messages, |m| &m.id);
    let exact = search.text.is_some();
    let mut found = Vec::with_capacity(messages.len());
    for row in message_rows(&state, messages).await? {
        // A search for one id shows everything about what it found; a browse stays a list.
        let (deliveries, attempts) = if exact {
            message_details(&state, &row.app_id, &row.id).await?
        } else {
            (Vec::new(), Vec::new())
        };
        found.push(Found {
            row,
            deliveries,
            attempts,
        });
    }
    let event_types = crate::portal::endpoints::catalog(&state)
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let searched = exact
        || search.app_id.is_some()
        || search.filter.event_types.is_some()
        || search.filter.delivery_statuses.is_some()
        || since.is_some()
        || until.is_some();
    Ok(render(
        &SearchPage {
            chrome: Chrome::new(&session, "search"),
            title: if exact {
                format!("Messages for {text}")
            } else {
                "Messages".into()
            },
            query,
            event_types,
            found,
            next,
            searched,
            error,
        },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub app: Application,
    pub message: Message,
    pub created: String,
    pub payload: String,
    pub payload_cut: bool,
    pub deliveries: Vec<MessageDelivery>,
    pub attempts: Vec<AttemptRow>,
    pub notice: Option<&'static str>,
}

/// `GET /ui/apps/{app}/messages/{msg}`: a message, where it went, every attempt, and the
/// actions on it.
pub async fn message(
    State(state): State<AppState>,
    session: OperatorSession,
    Path((app_id, msg_id)): Path<(String, String)>,
    Query(query): Query<AppQuery>,
) -> PageResult {
    let app = load_app(&state, &app_id).await?;
    let message = state
        .store
        .get_message(&app.id, &msg_id)
        .await
        .or_problem()?
        .ok_or_else(|| not_found("message"))?;
    let (deliveries, attempts) = message_details(&state, &app.id, &message.id).await?;
    let (payload, payload_cut) = shown_body(&message.payload);
    Ok(render(
        &MessagePage {
            chrome: Chrome::new(&session, "search"),
            title: format!("Message {}", message.id),
            created: when(message.created_at),
            payload,
            payload_cut,
            app,
            message,
            deliveries,
            attempts,
            notice: super::actions::notice(&query.done),
        },
        StatusCode::OK,
    ))
}

#[derive(Deserialize, Default)]
pub struct EndpointsQuery {
    #[serde(default)]
    url: String,
}

pub struct EndpointHit {
    pub app_id: String,
    /// The application's name, or its id when it has gone.
    pub app_name: String,
    pub id: String,
    pub url: String,
    pub state: String,
    pub state_class: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/endpoints.html")]
pub struct EndpointsPage {
    pub chrome: Chrome,
    pub title: String,
    pub url: String,
    pub hits: Vec<EndpointHit>,
}

/// `GET /ui/endpoints?url=`: endpoints of every application whose URL contains the text.
pub async fn endpoints(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<EndpointsQuery>,
) -> PageResult {
    let url = query.url.trim().to_string();
    let found = if url.is_empty() {
        Vec::new()
    } else {
        state.store.search_endpoints(&url, 100).await.or_problem()?
    };
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut hits = Vec::with_capacity(found.len());
    for e in found {
        // Whether it is failing lives with its activity, as on the portal's list.
        let failing_since = state
            .store
            .endpoint_activity(&e.app_id, &e.id, now_millis())
            .await
            .or_problem()?
            .failing_since;
        let (state_word, state_class) = match (e.disabled, failing_since) {
            (true, _) => ("Disabled".to_string(), "bad"),
            (false, Some(since)) => (format!("Failing since {}", when(since)), "warn"),
            (false, None) => ("Enabled".to_string(), "ok"),
        };
        let app_id = e.app_id.to_string();
        if !names.contains_key(&app_id) {
            let name = state
                .store
                .get_app(&app_id)
                .await
                .or_problem()?
                .map_or_else(|| app_id.clone(), |a| a.name);
            names.insert(app_id.clone(), name);
        }
        hits.push(EndpointHit {
            app_name: names.get(&app_id).cloned().unwrap_or_default(),
            app_id,
            id: e.id.to_string(),
            url: e.url.to_string(),
            state: state_word,
            state_class,
        });
    }
    Ok(render(
        &EndpointsPage {
            chrome: Chrome::new(&session, "endpoints"),
            title: "Endpoints".into(),
            url,
            hits,
        },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "dashboard/check.html")]
pub struct CheckPage {
    pub chrome: Chrome,
    pub title: String,
    pub app: Application,
    pub endpoint: crate::store::Endpoint,
    pub latest: Option<crate::portal::checks::ReportView>,
    pub earlier: Vec<crate::portal::checks::ReportView>,
    pub whose: &'static str,
    pub code_link: String,
    pub code_link_text: &'static str,
}

/// `GET /ui/apps/{app}/endpoints/{endpoint}/check`: the endpoint's check reports, as its
/// merchant sees them in the portal.
pub async fn endpoint_checks(
    State(state): State<AppState>,
    session: OperatorSession,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> PageResult {
    let app = load_app(&state, &app_id).await?;
    let endpoint = state
        .store
        .get_endpoint(&app.id, &endpoint_id)
        .await
        .or_problem()?
        .ok_or_else(|| not_found("endpoint"))?;
    let mut reports = crate::api::certify::stored_reports(
        &state,
        &app.id,
        &endpoint.id,
        crate::store::checks::KEPT_PER_ENDPOINT,
    )
    .await
    .or_problem()?
    .into_iter()
    .map(crate::portal::checks::ReportView::from);
    Ok(render(
        &CheckPage {
            chrome: Chrome::new(&session, "apps"),
            title: format!("Checks of {}", endpoint.url),
            latest: reports.next(),
            earlier: reports.collect(),
            whose: "the merchant's",
            code_link: format!("/ui/apps/{}#{}", app.id, endpoint.id),
            code_link_text: "their portal's endpoint page (a portal link opens it)",
            app,
            endpoint,
        },
        StatusCode::OK,
    ))
}
