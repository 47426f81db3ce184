//! "Check my endpoint" (a hookd extension): the server runs `hookd certify`'s battery against
//! an existing endpoint, signed with the endpoint's own key and sent through the same SSRF guard
//! and client as its deliveries, and keeps the report for the endpoint's owner.

use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::endpoints::load;
use super::error::{ApiError, ErrorResponses};
use super::extract::Path;
use super::AppState;
use crate::certify::{self, HeaderSet, Report, Target};
use crate::config::SignatureHeaders;
use crate::domain::time::now_millis;
use crate::store::checks::{EndpointCheck, KEPT_PER_ENDPOINT};
use crate::store::Endpoint;

/// The shortest time between two checks of one endpoint: each check sends ten requests, and
/// no tenant may turn hookd into a means of flooding an address.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/certify",
        post(check).get(reports),
    )
}

/// The reports kept for an endpoint, newest first.
#[derive(Serialize, ToSchema)]
pub struct ReportList {
    pub data: Vec<Report>,
}

/// Sends the battery of `hookd certify` to the endpoint and answers the report, which is also
/// kept (the newest ten per endpoint). The genuine request must be answered 2xx within the
/// delivery timeout; forged, tampered and stale ones with a 4xx. Every request carries a
/// `webhook-id` starting `cert_` and a `hookd-certify: 1` header, and none is a message: the
/// endpoint's delivery history is untouched. At most one check per endpoint every 10 seconds.
#[utoipa::path(
    post,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/certify",
    tag = "Endpoint",
    operation_id = "v1.endpoint.certify",
    summary = "Check that the endpoint refuses forged requests (hookd extension)",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 200, body = Report), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn check(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<axum::Json<Report>, ApiError> {
    let (_, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    let url = checkable_url(&endpoint)?;
    let now = now_millis();
    refuse_if_checked_lately(&state, &endpoint, now).await?;
    let target = Target {
        url: &url,
        key: &endpoint.secret,
        headers: header_set(state.signature_headers),
        extra_headers: &endpoint.headers.clone().into_iter().collect::<Vec<_>>(),
    };
    let body = certify::example_body(endpoint.event_types.as_deref());
    let report = certify::run(&state.outbound, &target, &body, now / 1000).await;
    let record = EndpointCheck {
        app_id: endpoint.app_id.clone(),
        endpoint_id: endpoint.id.clone(),
        checked_at: now,
        passed: report.passed,
        report: serde_json::to_string(&report).map_err(|_| ApiError::internal())?,
    };
    state.store.record_endpoint_check(&record).await?;
    Ok(axum::Json(report))
}

/// The reports of the endpoint's checks, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/certify",
    tag = "Endpoint",
    operation_id = "v1.endpoint.list-certify-reports",
    summary = "List the endpoint's check reports (hookd extension)",
    params(("app_id" = String, Path, description = "The application's id or uid"), ("endpoint_id" = String, Path, description = "The endpoint's id or uid")),
    responses((status = 200, body = ReportList), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn reports(
    State(state): State<AppState>,
    principal: Principal,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<axum::Json<ReportList>, ApiError> {
    let (app, endpoint) = load(&state, &principal, &app_id, &endpoint_id).await?;
    let data = stored_reports(&state, &app.id, &endpoint.id, KEPT_PER_ENDPOINT).await?;
    Ok(axum::Json(ReportList { data }))
}

/// The newest `limit` reports of an endpoint, as the API answers them.
pub(crate) async fn stored_reports(
    state: &AppState,
    app_id: &crate::domain::AppId,
    endpoint_id: &crate::domain::EndpointId,
    limit: usize,
) -> Result<Vec<Report>, ApiError> {
    let stored = state
        .store
        .endpoint_checks(app_id, endpoint_id, limit)
        .await?;
    stored
        .iter()
        .map(|check| serde_json::from_str(&check.report).map_err(|_| ApiError::internal()))
        .collect()
}

/// Only HTTP endpoints can be checked; a `hookd listen` session's endpoint is a developer's
/// own machine, reached through the relay.
fn checkable_url(endpoint: &Endpoint) -> Result<reqwest::Url, ApiError> {
    reqwest::Url::parse(&endpoint.url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "not_checkable",
                &["path", "endpoint_id"],
                "only an endpoint with an http:// or https:// URL can be checked",
            )
        })
}

async fn refuse_if_checked_lately(
    state: &AppState,
    endpoint: &Endpoint,
    now: i64,
) -> Result<(), ApiError> {
    let latest = state
        .store
        .endpoint_checks(&endpoint.app_id, &endpoint.id, 1)
        .await?;
    let interval = i64::try_from(MIN_INTERVAL.as_millis()).unwrap_or(i64::MAX);
    match latest.first() {
        Some(last) if now - last.checked_at < interval => {
            let wait = (last.checked_at + interval - now).max(0) / 1000 + 1;
            Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this endpoint was checked less than {} seconds ago; retry after the time in \
                     Retry-After",
                    MIN_INTERVAL.as_secs()
                ),
            )
            .retry_after(wait.unsigned_abs()))
        }
        _ => Ok(()),
    }
}

fn header_set(names: SignatureHeaders) -> HeaderSet {
    match names {
        SignatureHeaders::Webhook => HeaderSet::Webhook,
        SignatureHeaders::Svix => HeaderSet::Svix,
        SignatureHeaders::Both => HeaderSet::Both,
    }
}
