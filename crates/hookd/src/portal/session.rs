//! Portal sessions.
//!
//! A magic link carries a one-time key in its fragment. The portal page's script sends it once
//! to `POST /portal/session`, which uses the key up and answers a session token scoped to the
//! link's application and capabilities, with the link's expiry. The script keeps the session
//! in `sessionStorage` and sends it as `Authorization: Bearer` on every request, because a
//! portal inside a platform's dashboard is a cross-site iframe, where browsers block cookies.
//! Where cookies do work, the answer also sets one (HttpOnly), so plain links and forms work
//! without the script; a form sent with the cookie must carry the session's CSRF token. A
//! request with the header needs none: another site cannot set that header.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::pages::{Problem, Shell};
use super::PortalError;
use crate::api::auth::{bearer_token, hash_token, issue, NewToken, PortalCapability};
use crate::api::AppState;
use crate::domain::ids::AppId;
use crate::domain::time::now_millis;
use crate::store::TokenKind;

/// The cookie that carries a session where cookies work.
pub const COOKIE_NAME: &str = "hookd_portal";

/// A merchant's live portal session.
#[derive(Debug, Clone)]
pub struct PortalSession {
    pub app_id: AppId,
    /// The application's name, shown at the top of every page.
    pub app_name: String,
    /// The session token as the browser sent it, from which the CSRF token derives.
    token: String,
    capabilities: Vec<PortalCapability>,
    /// The token came in the `Authorization` header (so the request cannot be forged).
    via_header: bool,
}

impl PortalSession {
    pub fn can(&self, capability: PortalCapability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Refuses an action the session was not given.
    pub fn require(&self, capability: PortalCapability) -> Result<(), PortalError> {
        if self.can(capability) {
            Ok(())
        } else {
            Err(PortalError::Forbidden)
        }
    }

    /// The token forms carry when they are sent with the cookie.
    pub fn csrf_token(&self) -> String {
        hash_token(&format!("portal-csrf:{}", self.token))
    }

    /// Checks the CSRF token of a state-changing request sent with the cookie.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PortalError> {
        if self.via_header || constant_time_eq(sent.as_bytes(), self.csrf_token().as_bytes()) {
            Ok(())
        } else {
            Err(PortalError::Csrf)
        }
    }

    pub fn token_hash(&self) -> String {
        hash_token(&self.token)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token of a request: the header first, then the cookie.
fn presented_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return bearer_token(headers).ok().map(|t| (t.to_string(), true));
    }
    cookie(headers, COOKIE_NAME).map(|value| (value, false))
}

/// The value of the cookie `wanted`, when the request has a non-empty one.
pub(crate) fn cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

/// Whether htmx sent the request (so it wants a page to swap in, not a bootstrap shell).
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

impl FromRequestParts<AppState> for PortalSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some((token, via_header)) = presented_token(&parts.headers) else {
            return Err(signed_out(parts, state));
        };
        let hash = hash_token(&token);
        if let Err(limited) = state.rate_limit.check(&hash) {
            return Err(PortalError::Api(limited).into_page(state));
        }
        let found = match state.store.find_token(&hash).await {
            Ok(found) => found,
            Err(err) => return Err(PortalError::Api(err.into()).into_page(state)),
        };
        match found {
            Some(found)
                if found.kind == TokenKind::PortalSession && found.is_live(now_millis()) =>
            {
                // A session outlives nothing: its application may have been deleted since.
                let app = match &found.app_id {
                    Some(app_id) => state.store.get_app(app_id).await,
                    None => Ok(None),
                };
                let app = match app {
                    Ok(Some(app)) => app,
                    Ok(None) => return Err(signed_out(parts, state)),
                    Err(err) => return Err(PortalError::Api(err.into()).into_page(state)),
                };
                let capabilities = found
                    .capabilities
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|name| PortalCapability::parse(name))
                    .collect();
                Ok(PortalSession {
                    app_id: app.id,
                    app_name: app.name,
                    token,
                    capabilities,
                    via_header,
                })
            }
            _ => Err(signed_out(parts, state)),
        }
    }
}

/// The answer to a request without a live session. A page loaded by the browser gets the
/// shell, whose script signs in with the link's key or the session it keeps; anything else
/// is told the session ended.
fn signed_out(parts: &Parts, state: &AppState) -> Response {
    if parts.method == Method::GET && !is_htmx(&parts.headers) {
        return Shell::page(state).into_response_with(StatusCode::OK, state);
    }
    Problem::new(
        "Your session has ended",
        "Open the webhooks portal again from your dashboard to get a new link.",
    )
    .ending_session()
    .into_response_with(StatusCode::UNAUTHORIZED, state)
}

#[derive(Deserialize)]
pub struct ExchangeIn {
    key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeOut {
    session: String,
    expires_at: i64,
}

/// `POST /portal/session`: uses up a magic link's key and answers a session.
pub async fn exchange(
    State(state): State<AppState>,
    Form(input): Form<ExchangeIn>,
) -> Result<Response, crate::api::error::ApiError> {
    use crate::api::error::ApiError;
    let now = now_millis();
    let link = state
        .store
        .redeem_token(&hash_token(input.key.trim()), TokenKind::PortalLink, now)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("this portal link has expired or was already used")
        })?;
    let session = issue(
        &state.store,
        NewToken {
            prefix: "portal",
            app_id: link.app_id.as_ref(),
            name: "portal session",
            kind: TokenKind::PortalSession,
            expires_at: link.expires_at,
            capabilities: link.capabilities,
        },
    )
    .await?;
    let expires_at = link.expires_at.unwrap_or(now);
    let max_age = ((expires_at - now) / 1000).max(0);
    let mut response = axum::Json(ExchangeOut {
        session: session.clone(),
        expires_at,
    })
    .into_response();
    let cookie = format!(
        "{COOKIE_NAME}={session}; Path=/portal; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if state.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("hookd_portal=; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=0")
}
