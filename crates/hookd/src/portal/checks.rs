//! "Check my endpoint": the merchant runs `hookd certify`'s battery against one of their
//! endpoints (through the API's route) and reads what their code gets wrong.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::endpoints::{action_on, load, principal};
use super::pages::{render, see_other, when, Chrome};
use super::session::PortalSession;
use super::{OrPage, PageResult};
use crate::api::auth::PortalCapability;
use crate::api::certify as api;
use crate::api::extract::Path;
use crate::api::AppState;
use crate::certify::{Report, Verdict};
use crate::store::checks::KEPT_PER_ENDPOINT;
use crate::store::Endpoint;

/// One check of a report, as the page lists it.
pub struct CheckRow {
    pub name: String,
    pub label: &'static str,
    pub class: &'static str,
    pub answered: String,
    /// What to do, for a check that did not pass.
    pub advice: Option<String>,
}

/// One report, as the page shows it.
pub struct ReportView {
    pub checked_at: String,
    pub passed: bool,
    pub failed: usize,
    pub scheme: String,
    pub checks: Vec<CheckRow>,
}

impl From<Report> for ReportView {
    fn from(report: Report) -> Self {
        let checked_at = chrono::DateTime::parse_from_rfc3339(&report.checked_at)
            .map(|t| when(t.timestamp_millis()))
            .unwrap_or(report.checked_at);
        let checks: Vec<CheckRow> = report
            .checks
            .into_iter()
            .map(|check| {
                let (label, class) = match check.verdict {
                    Verdict::Pass => ("Passed", "ok"),
                    Verdict::Fail => ("Failed", "bad"),
                    Verdict::Info => ("Note", "wait"),
                };
                CheckRow {
                    name: sentence_case(&check.name),
                    label,
                    class,
                    answered: check.answered,
                    advice: (check.verdict != Verdict::Pass).then_some(check.why),
                }
            })
            .collect();
        Self {
            checked_at,
            passed: report.passed,
            failed: checks.iter().filter(|c| c.class == "bad").count(),
            scheme: report.signature_scheme,
            checks,
        }
    }
}

/// "a wrong signature is refused" as a table cell reads it: "A wrong signature is refused".
fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[derive(Template)]
#[template(path = "portal/check.html")]
pub struct CheckPage {
    pub chrome: Chrome,
    pub title: String,
    pub endpoint: Endpoint,
    pub latest: Option<ReportView>,
    pub earlier: Vec<ReportView>,
    pub notice: Option<&'static str>,
    pub timeout_secs: u64,
    /// Whose endpoint, as the report's sentences say it ("your", "the merchant's").
    pub whose: &'static str,
    /// Where the code that verifies correctly is shown.
    pub code_link: String,
    pub code_link_text: &'static str,
}

#[derive(Deserialize)]
pub struct CheckQuery {
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct CheckForm {
    #[serde(default)]
    csrf: String,
}

/// The newest report of an endpoint, for its page's summary.
pub async fn latest(
    state: &AppState,
    endpoint: &Endpoint,
) -> Result<Option<ReportView>, crate::api::error::ApiError> {
    let reports = api::stored_reports(state, &endpoint.app_id, &endpoint.id, 1).await?;
    Ok(reports.into_iter().next().map(ReportView::from))
}

/// `GET /portal/endpoints/{id}/check`: the newest report in full and the earlier ones.
pub async fn page(
    State(state): State<AppState>,
    session: PortalSession,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    Query(query): Query<CheckQuery>,
) -> PageResult {
    let endpoint = load(&state, &session, &endpoint_id).await?;
    let endpoint_id = endpoint.id.clone();
    let mut reports = api::stored_reports(&state, &session.app_id, &endpoint.id, KEPT_PER_ENDPOINT)
        .await
        .or_page(&state)?
        .into_iter()
        .map(ReportView::from);
    let latest = reports.next();
    let notice = match query.done.as_deref() {
        Some("too_soon") => Some(
            "The endpoint was checked a few seconds ago. Wait ten seconds between checks, then run it again.",
        ),
        _ => None,
    };
    Ok(render(
        &CheckPage {
            chrome: Chrome::new(&state, &session, "endpoints"),
            title: format!("Check {}", endpoint.url),
            endpoint,
            latest,
            earlier: reports.collect(),
            notice,
            timeout_secs: state.settings.request_timeout.as_secs(),
            whose: "your",
            code_link: format!("/portal/endpoints/{endpoint_id}#verify-h"),
            code_link_text: "the endpoint's page",
        },
        StatusCode::OK,
    ))
}

/// `POST /portal/endpoints/{id}/check`: runs the check, then shows its report.
pub async fn run(
    State(state): State<AppState>,
    session: PortalSession,
    headers: HeaderMap,
    axum::extract::Path(endpoint_id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<CheckForm>,
) -> PageResult {
    let endpoint = action_on(
        &state,
        &session,
        PortalCapability::CreateAttempts,
        &form.csrf,
        &endpoint_id,
    )
    .await?;
    let page = format!("/portal/endpoints/{}/check", endpoint.id);
    let ran = api::check(
        State(state.clone()),
        principal(&session),
        Path((session.app_id.to_string(), endpoint.id.to_string())),
    )
    .await;
    match ran {
        Ok(_) => Ok(see_other(&headers, &page)),
        Err(err) if err.status() == StatusCode::TOO_MANY_REQUESTS => {
            Ok(see_other(&headers, &format!("{page}?done=too_soon")))
        }
        Err(err) => Err(err).or_page(&state),
    }
}
