//! The operator dashboard at `/ui/`: where the platform's operators see what hookd is doing
//! and act on it, signed in with an org token.
//!
//! Pages are rendered on the server from templates compiled into the binary
//! (`templates/dashboard/`), in the merchant portal's look; plain links and forms, with htmx
//! only to refresh the overview. Reads go to the store across applications; every change goes
//! through the API handler that makes it (as an org caller), after a confirmation page, and is
//! written to the audit log. How sessions work is in [`session`].

// Page handlers answer an error page (an axum `Response`) as their error, as the portal's do.
#![expect(clippy::result_large_err, reason = "error pages are whole responses")]

mod actions;
mod admin;
mod find;
mod overview;
mod pages;
pub mod session;

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::AppState;

/// Every dashboard route.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/overview", get(overview::live))
        .route("/ui/login", get(session::back_home).post(session::sign_in))
        .route(
            "/ui/logout",
            get(session::back_home).post(session::sign_out),
        )
        .route("/ui/assets/dashboard.js", get(pages::script))
        .route("/ui/apps", get(find::apps))
        .route("/ui/apps/{app_id}", get(find::app))
        .route(
            "/ui/apps/{app_id}/portal-link",
            get(session::back_home).post(find::portal_link),
        )
        .route("/ui/apps/{app_id}/messages/{msg_id}", get(find::message))
        .route(
            "/ui/apps/{app_id}/endpoints/{endpoint_id}/check",
            get(find::endpoint_checks),
        )
        .route("/ui/search", get(find::search))
        .route("/ui/endpoints", get(find::endpoints))
        .route("/ui/actions", get(session::back_home).post(actions::act))
        .route("/ui/audit", get(actions::audit))
        .route("/ui/tasks/{task_id}", get(actions::task))
        .route("/ui/event-types", get(admin::event_types))
        .route(
            "/ui/event-types/edit",
            get(admin::event_type_form).post(admin::save_event_type),
        )
        .route("/ui/system", get(admin::system))
        .route(
            "/ui/tokens",
            get(session::back_home).post(admin::create_token),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
}

/// Headers of every dashboard answer: scripts and styles only from hookd, nothing inline, never
/// in a frame, no referrer, no caching (pages show tokens and payloads).
async fn security_headers(State(_): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
