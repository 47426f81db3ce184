//! The merchant portal: web pages where a merchant manages its endpoints and sees its
//! deliveries, opened by the magic link of `POST /api/v1/auth/app-portal-access/{app_id}`.
//!
//! Pages are rendered on the server from templates compiled into the binary
//! (`templates/portal/`), with htmx (one committed file) swapping pages in place so the
//! session header travels with every request. Handlers sit beside the API's: reads go to the
//! same store, always scoped by the session's application; every change calls the API
//! handler that makes it through the API, so validation, the SSRF guard, operational webhooks
//! and tenant checks are the API's own. How sessions work is in [`session`].

// Page handlers answer an error page (an axum `Response`) as their error: it is the cold path,
// and boxing every page to shrink the `Err` variant would buy nothing.
#![expect(clippy::result_large_err, reason = "error pages are whole responses")]

mod assets;
pub(crate) mod checks;
pub(crate) mod endpoints;
pub(crate) mod log;
pub(crate) mod pages;
pub mod session;

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::api::error::ApiError;
use crate::api::AppState;
use pages::Problem;

/// Every portal route.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/portal",
            get(|| async { axum::response::Redirect::permanent("/portal/") }),
        )
        .route("/portal/", get(endpoints::list))
        .route("/portal/session", post(session::exchange))
        .route("/portal/logout", post(pages::logout))
        .route("/portal/brand.css", get(assets::brand_css))
        .route("/portal/assets/{file}", get(assets::file))
        .route("/portal/endpoints/new", get(endpoints::new_form))
        .route(
            "/portal/endpoints",
            get(pages::back_to_page).post(endpoints::create),
        )
        .route(
            "/portal/endpoints/{endpoint_id}",
            get(endpoints::detail).post(endpoints::update),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/edit",
            get(endpoints::edit_form),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/secret",
            get(pages::back_to_page).post(endpoints::reveal_secret),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/rotate",
            get(pages::back_to_page).post(endpoints::rotate_secret),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/enable",
            get(pages::back_to_page).post(endpoints::enable),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/disable",
            get(pages::back_to_page).post(endpoints::disable),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/test",
            get(pages::back_to_page).post(endpoints::send_test),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/recover",
            get(pages::back_to_page).post(endpoints::recover),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/check",
            get(checks::page).post(checks::run),
        )
        .route(
            "/portal/endpoints/{endpoint_id}/delete",
            get(endpoints::confirm_delete).post(endpoints::delete),
        )
        .route("/portal/messages", get(log::messages))
        .route("/portal/messages/{msg_id}", get(log::message))
        .route(
            "/portal/messages/{msg_id}/resend/{endpoint_id}",
            get(pages::back_to_page).post(log::resend),
        )
        .route(
            "/portal/messages/{msg_id}/attempts/{attempt_id}",
            get(log::attempt),
        )
        .route("/portal/event-types", get(log::catalog))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
}

/// Headers of every portal answer: a strict Content-Security-Policy (scripts and styles only
/// from hookd itself, nothing inline), framing only by the configured ancestors, no referrer
/// (portal URLs never leave), and no caching of pages that may hold secrets.
async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/portal/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&state)) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !is_asset && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn content_security_policy(state: &AppState) -> String {
    let logo = state
        .portal
        .logo_url
        .as_ref()
        .map(|url| format!(" {}", url.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{logo}; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {}",
        state.portal.frame_ancestors.join(" ")
    )
}

/// Why a portal request failed.
#[derive(Debug)]
pub enum PortalError {
    /// The session was not given the capability this action needs.
    Forbidden,
    /// A form sent with the cookie lacked the session's CSRF token.
    Csrf,
    NotFound(&'static str),
    /// What the API answered.
    Api(ApiError),
}

impl From<ApiError> for PortalError {
    fn from(err: ApiError) -> Self {
        PortalError::Api(err)
    }
}

impl From<crate::store::StoreError> for PortalError {
    fn from(err: crate::store::StoreError) -> Self {
        PortalError::Api(err.into())
    }
}

impl PortalError {
    /// The error as a page in the portal's look.
    pub fn into_page(self, state: &AppState) -> Response {
        let (status, title, detail) = match self {
            PortalError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This portal link does not allow that action. Ask for a link with more access."
                    .to_string(),
            ),
            PortalError::Csrf => (
                StatusCode::FORBIDDEN,
                "The form expired",
                "Reload the page and try again.".to_string(),
            ),
            PortalError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Not found",
                format!("This {what} does not exist, or belongs to another account."),
            ),
            PortalError::Api(err) if err.status() == StatusCode::NOT_FOUND => (
                StatusCode::NOT_FOUND,
                "Not found",
                format!("{}.", capitalize(&err.message())),
            ),
            PortalError::Api(err) if err.status().is_server_error() => (
                err.status(),
                "Something went wrong",
                "hookd could not answer just now. Try again in a moment.".to_string(),
            ),
            PortalError::Api(err) => (
                err.status(),
                "That did not work",
                format!("{}.", capitalize(&err.message())),
            ),
        };
        Problem::new(title, &detail).into_response_with(status, state)
    }
}

pub(crate) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A page handler's result: a page, or an error page.
pub type PageResult = Result<Response, Response>;

/// Turns a handler's error into its page, for `?`.
pub trait OrPage<T> {
    fn or_page(self, state: &AppState) -> Result<T, Response>;
}

impl<T, E: Into<PortalError>> OrPage<T> for Result<T, E> {
    fn or_page(self, state: &AppState) -> Result<T, Response> {
        self.map_err(|err| err.into().into_page(state))
    }
}
