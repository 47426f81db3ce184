//! What operators do from the dashboard, and the audit log that remembers it.
//!
//! Every action is one form posted to `/ui/actions`. Sent without `confirmed`, the answer is a
//! page that says exactly what will happen, with the same form to confirm; sent confirmed, the
//! action runs through the API handler that makes it (so validation, the SSRF guard and
//! operational webhooks are the API's own), is written to the audit log, and the browser goes
//! back to the page it came from.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::pages::{form_time, not_found, when, Chrome, OrProblem, PageResult, Problem};
use super::session::OperatorSession;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::extract::{parse, Json, Path as ApiPath};
use crate::api::{attempts, certify, endpoints, messages, recover, AppState};
use crate::domain::ids::{AppId, AuditId, MessageId, TaskId};
use crate::domain::time::{now_millis, rfc3339};
use crate::portal::pages::render;
use crate::store::{AuditEntry, AuditFilter, PageRequest};

/// Writes one line of the audit log.
pub async fn record(
    state: &AppState,
    session: &OperatorSession,
    action: &str,
    app_id: Option<&str>,
    target: &str,
    detail: &str,
) -> Result<(), Response> {
    state
        .store
        .append_audit(&AuditEntry {
            id: AuditId::generate(),
            at: now_millis(),
            actor: session.actor.clone(),
            action: action.to_string(),
            app_id: app_id.map(AppId::from),
            target: target.to_string(),
            detail: detail.to_string(),
        })
        .await
        .or_problem()
}

/// The message a page shows after an action, chosen by a fixed word.
pub fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "resend" => "Sent again: the new attempt appears below as soon as it is made.",
        "purge" => "The payload is deleted; deliveries that were still waiting are canceled.",
        "enable" => "The endpoint is enabled: new messages are delivered to it again.",
        "disable" => "The endpoint is disabled: nothing is delivered to it until it is enabled.",
        "rotate" => "The secret is rotated; the old one keeps signing for 24 hours.",
        "rate_limit" => "The endpoint's rate limit is changed.",
        "token_revoke" => "The token is revoked: requests with it are refused from now on.",
        _ => return None,
    })
}

/// An action form, as posted (and posted again from the confirmation page).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub endpoint_id: String,
    #[serde(default)]
    pub msg_id: String,
    /// The action's value: a rate limit, a time to recover from, a token id.
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub confirmed: String,
}

#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub title: String,
    pub question: String,
    pub consequence: &'static str,
    pub danger: bool,
    pub form: ActionForm,
    pub back: String,
}

/// What an action will do, in words, and where the operator goes after it.
struct Plan {
    question: String,
    consequence: &'static str,
    danger: bool,
    back: String,
}

fn plan(form: &ActionForm) -> Result<Plan, Response> {
    let app_page = format!("/ui/apps/{}", form.app_id);
    let message_page = format!("/ui/apps/{}/messages/{}", form.app_id, form.msg_id);
    let plan = |question: String, consequence: &'static str, danger: bool, back: &str| Plan {
        question,
        consequence,
        danger,
        back: back.to_string(),
    };
    Ok(match form.action.as_str() {
        "resend" => plan(
            format!("Send message {} to endpoint {} again?", form.msg_id, form.endpoint_id),
            "A new attempt is made now, whatever happened before. Receivers that deduplicate by webhook-id will see the same id again.",
            false,
            &message_page,
        ),
        "resend_all" => plan(
            format!("Send message {} again to every endpoint it went to?", form.msg_id),
            "A new attempt is made now to each of them.",
            false,
            &message_page,
        ),
        "purge" => plan(
            format!("Delete the payload of message {}?", form.msg_id),
            "The payload is gone for good (it reads as {} from then on); deliveries still waiting are canceled. The message and its attempts stay.",
            true,
            &message_page,
        ),
        "enable" => plan(
            format!("Enable endpoint {}?", form.endpoint_id),
            "New messages are delivered to it again; its failure clock starts afresh.",
            false,
            &app_page,
        ),
        "disable" => plan(
            format!("Disable endpoint {}?", form.endpoint_id),
            "Nothing is delivered to it until it is enabled; its waiting deliveries are canceled. The merchant is told by an operational webhook if those are on.",
            true,
            &app_page,
        ),
        "certify" => plan(
            format!("Check endpoint {}: send it forged, tampered and stale requests?", form.endpoint_id),
            "Ten requests go to the endpoint now, signed with its own key and marked with a hookd-certify: 1 header; none is a message. The report is kept, and the merchant sees it in their portal too.",
            false,
            &app_page,
        ),
        "rotate" => plan(
            format!("Rotate the signing secret of endpoint {}?", form.endpoint_id),
            "A new secret signs from now on; the old one keeps signing beside it for 24 hours, so the merchant has a day to switch.",
            true,
            &app_page,
        ),
        "rate_limit" => plan(
            if form.value.trim().is_empty() {
                format!("Remove the rate limit of endpoint {}?", form.endpoint_id)
            } else {
                format!(
                    "Limit endpoint {} to {} deliveries per second?",
                    form.endpoint_id,
                    form.value.trim()
                )
            },
            "Deliveries to it start no faster than this, across every node; the rest wait their turn.",
            false,
            &app_page,
        ),
        "recover" => plan(
            format!(
                "Send again every failed message of endpoint {} since {} UTC?",
                form.endpoint_id,
                form.value.trim()
            ),
            "A background task makes each failed delivery due again, in batches; you can watch it finish.",
            false,
            &app_page,
        ),
        "token_revoke" => plan(
            format!("Revoke API token {}?", form.value),
            "Every request with it is refused from now on, including any dashboard sign-in made with it later.",
            true,
            "/ui/system",
        ),
        _ => {
            return Err(Problem::new("Unknown action", "This form asks for nothing hookd can do.")
                .into_response_with(StatusCode::BAD_REQUEST))
        }
    })
}

/// `POST /ui/actions`: confirms, then runs an action.
pub async fn act(
    State(state): State<AppState>,
    session: OperatorSession,
    Form(form): Form<ActionForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let plan = plan(&form)?;
    if form.confirmed != "yes" {
        let mut form = form;
        form.confirmed = "yes".into();
        return Ok(render(
            &ConfirmPage {
                chrome: Chrome::new(&session, ""),
                title: "Confirm".into(),
                question: plan.question,
                consequence: plan.consequence,
                danger: plan.danger,
                form,
                back: plan.back,
            },
            StatusCode::OK,
        ));
    }
    let outcome = run(&state, &form).await.or_problem()?;
    record(
        &state,
        &session,
        &form.action,
        (!form.app_id.is_empty()).then_some(form.app_id.as_str()),
        outcome.target.as_str(),
        &outcome.detail,
    )
    .await?;
    let to = outcome
        .next_page
        .unwrap_or_else(|| format!("{}?done={}", plan.back, form.action));
    Ok(axum::response::IntoResponse::into_response(Redirect::to(
        &to,
    )))
}

/// What an action did, for the audit log.
struct Outcome {
    target: String,
    detail: String,
    /// Where the operator goes next, when not back where they came from (a task's progress,
    /// a check's report).
    next_page: Option<String>,
}

/// A request body for an API handler, as if the client had sent it.
fn body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<Json<T>, ApiError> {
    parse(value.to_string().as_bytes()).map(Json)
}

async fn run(state: &AppState, form: &ActionForm) -> Result<Outcome, ApiError> {
    let state_ = || State(state.clone());
    let app_endpoint = || ApiPath((form.app_id.clone(), form.endpoint_id.clone()));
    let mut outcome = Outcome {
        target: if form.msg_id.is_empty() {
            form.endpoint_id.clone()
        } else {
            form.msg_id.clone()
        },
        detail: String::new(),
        next_page: None,
    };
    match form.action.as_str() {
        "resend" => {
            attempts::resend(
                state_(),
                Principal::Org,
                ApiPath((
                    form.app_id.clone(),
                    form.msg_id.clone(),
                    form.endpoint_id.clone(),
                )),
            )
            .await
            .map(drop)?;
            outcome.detail = format!("to {}", form.endpoint_id);
        }
        "resend_all" => {
            let deliveries = state
                .store
                .list_message_deliveries(
                    &AppId::from(form.app_id.as_str()),
                    &MessageId::from(form.msg_id.as_str()),
                    &PageRequest::newest(100),
                )
                .await?;
            if deliveries.is_empty() {
                return Err(ApiError::not_found("message"));
            }
            for (endpoint, _) in &deliveries {
                attempts::resend(
                    state_(),
                    Principal::Org,
                    ApiPath((
                        form.app_id.clone(),
                        form.msg_id.clone(),
                        endpoint.id.to_string(),
                    )),
                )
                .await
                .map(drop)?;
            }
            outcome.detail = format!("to {} endpoints", deliveries.len());
        }
        "purge" => {
            messages::expunge_content(
                state_(),
                Principal::Org,
                ApiPath((form.app_id.clone(), form.msg_id.clone())),
            )
            .await?;
        }
        "enable" | "disable" => {
            let disabled = form.action == "disable";
            endpoints::patch(
                state_(),
                Principal::Org,
                axum::http::HeaderMap::new(),
                app_endpoint(),
                body(json!({ "disabled": disabled }))?,
            )
            .await
            .map(drop)?;
        }
        "certify" => {
            let report = certify::check(state_(), Principal::Org, app_endpoint())
                .await?
                .0;
            let failed = report
                .checks
                .iter()
                .filter(|c| c.verdict == crate::certify::Verdict::Fail)
                .count();
            outcome.detail = if report.passed {
                "passed".into()
            } else {
                format!("{failed} failed")
            };
            outcome.next_page = Some(format!(
                "/ui/apps/{}/endpoints/{}/check",
                form.app_id, form.endpoint_id
            ));
        }
        "rotate" => {
            endpoints::rotate_secret(state_(), Principal::Org, app_endpoint(), body(json!({}))?)
                .await
                .map(drop)?;
        }
        "rate_limit" => {
            let value = form.value.trim();
            let limit = if value.is_empty() {
                serde_json::Value::Null
            } else {
                value
                    .parse::<i64>()
                    .map(serde_json::Value::from)
                    .map_err(|_| {
                        ApiError::invalid(
                            &["body", "value"],
                            "must be a whole number of deliveries per second",
                        )
                    })?
            };
            endpoints::patch(
                state_(),
                Principal::Org,
                axum::http::HeaderMap::new(),
                app_endpoint(),
                body(json!({ "throttleRate": limit }))?,
            )
            .await
            .map(drop)?;
            outcome.detail = if value.is_empty() {
                "no limit".into()
            } else {
                format!("{value} per second")
            };
        }
        "recover" => {
            let since = form_time(&form.value).ok_or_else(|| {
                ApiError::invalid(
                    &["body", "since"],
                    "must be a date and time like 2026-12-06 14:00 (UTC)",
                )
            })?;
            let (_, task) = recover::recover(
                state_(),
                Principal::Org,
                app_endpoint(),
                body(json!({ "since": rfc3339(since) }))?,
            )
            .await?;
            outcome.detail = format!("since {}", when(since));
            outcome.next_page = Some(format!("/ui/tasks/{}", task.0.id));
        }
        "token_revoke" => {
            if !state
                .store
                .revoke_api_token(&form.value.as_str().into())
                .await?
            {
                return Err(ApiError::not_found("token"));
            }
            outcome.target = form.value.clone();
        }
        _ => return Err(ApiError::bad_request("unknown action")),
    }
    Ok(outcome)
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub after: String,
}

pub struct AuditRow {
    pub entry: AuditEntry,
    pub at: String,
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub title: String,
    pub query: AuditQuery,
    pub rows: Vec<AuditRow>,
    pub next: Option<String>,
    pub actions: &'static [&'static str],
}

/// Everything the audit log may hold, for its filter.
const ACTIONS: &[&str] = &[
    "resend",
    "resend_all",
    "purge",
    "enable",
    "disable",
    "rotate",
    "rate_limit",
    "recover",
    "certify",
    "portal_link.create",
    "event_type.save",
    "event_type.archive",
    "token.create",
    "token_revoke",
];

/// `GET /ui/audit`: who did what, newest first.
pub async fn audit(
    State(state): State<AppState>,
    session: OperatorSession,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let given = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_string());
    let filter = AuditFilter {
        actor: given(&query.actor),
        action: given(&query.action),
        app_id: given(&query.app).map(AppId::from),
    };
    let limit = 50;
    let mut entries = state
        .store
        .list_audit(
            &filter,
            &PageRequest {
                cursor: given(&query.after),
                ..PageRequest::newest(limit)
            },
        )
        .await
        .or_problem()?;
    let next = (entries.len() > limit).then(|| {
        entries.truncate(limit);
        entries.last().map(|e| e.id.to_string()).unwrap_or_default()
    });
    Ok(render(
        &AuditPage {
            chrome: Chrome::new(&session, "audit"),
            title: "Audit log".into(),
            rows: entries
                .into_iter()
                .map(|entry| AuditRow {
                    at: when(entry.at),
                    entry,
                })
                .collect(),
            query,
            next,
            actions: ACTIONS,
        },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "dashboard/task.html")]
pub struct TaskPage {
    pub chrome: Chrome,
    pub title: String,
    pub task: crate::store::BackgroundTask,
    pub since: String,
    pub updated: String,
    pub running: bool,
}

/// `GET /ui/tasks/{id}`: a background task's progress; refreshes itself while it runs.
pub async fn task(
    State(state): State<AppState>,
    session: OperatorSession,
    Path(task_id): Path<String>,
) -> PageResult {
    let task = state
        .store
        .get_task(&TaskId::from(task_id))
        .await
        .or_problem()?
        .ok_or_else(|| not_found("task"))?;
    Ok(render(
        &TaskPage {
            chrome: Chrome::new(&session, ""),
            title: "Recovery".into(),
            since: when(task.since),
            updated: when(task.updated_at),
            running: task.status == crate::store::TaskStatus::Running,
            task,
        },
        StatusCode::OK,
    ))
}
