//! Operator sessions.
//!
//! An operator types an org token (or `HOOKD_ADMIN_TOKEN`) into the sign-in form once. hookd
//! checks it like the API does and stores a session in its place: a token of kind
//! `operator_session`, kept hashed in the database beside API tokens, so that any node of a
//! PostgreSQL deployment recognises it, and revoked by signing out. Its name records who
//! signed in, which is what the audit log says. The session travels in an HttpOnly,
//! `SameSite=Strict` cookie limited to `/ui`; every form also carries a CSRF token derived
//! from the session, checked on every change. Sign-in attempts and sessions are rate-limited
//! by the API's limiter.

use axum::extract::{FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::pages::{Problem, SignIn};
use crate::api::auth::{hash_token, issue, NewToken};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::domain::time::now_millis;
use crate::store::TokenKind;

/// The cookie that carries a session.
pub const COOKIE_NAME: &str = "hookd_ui";

/// How long a session lasts.
const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

/// An operator's live session.
#[derive(Debug, Clone)]
pub struct OperatorSession {
    /// Who signed in, as the audit log names them.
    pub actor: String,
    token: String,
}

impl OperatorSession {
    /// The token every form carries.
    pub fn csrf_token(&self) -> String {
        hash_token(&format!("operator-csrf:{}", self.token))
    }

    /// Checks the CSRF token a form sent.
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        let expected = self.csrf_token();
        let same = sent.len() == expected.len()
            && sent
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(
                Problem::new("The form expired", "Reload the page and try again.")
                    .into_response_with(StatusCode::FORBIDDEN),
            )
        }
    }
}

fn presented_token(parts: &Parts) -> Option<String> {
    crate::portal::session::cookie(&parts.headers, COOKIE_NAME)
}

impl FromRequestParts<AppState> for OperatorSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = presented_token(parts) else {
            return Err(signed_out(parts));
        };
        let hash = hash_token(&token);
        if let Err(limited) = state.rate_limit.check(&hash) {
            return Err(Problem::from_api(limited));
        }
        match state.store.find_token(&hash).await {
            Ok(Some(found))
                if found.kind == TokenKind::OperatorSession && found.is_live(now_millis()) =>
            {
                Ok(OperatorSession {
                    actor: found.name,
                    token,
                })
            }
            Ok(_) => Err(signed_out(parts)),
            Err(err) => Err(Problem::from_api(err.into())),
        }
    }
}

/// A browser without a session gets the sign-in page (401, so scripts and tests can tell).
fn signed_out(parts: &Parts) -> Response {
    let mut response = SignIn::new(None).into_response_with(StatusCode::UNAUTHORIZED);
    if parts.headers.contains_key("hx-request") {
        // The overview's refresh: send the whole page to the sign-in form.
        response
            .headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/ui/"));
    }
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

/// Who a token is, when it may open the dashboard: the admin token, or a live org API token.
async fn operator_named(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    let hash = hash_token(token);
    if state.admin_token_hash.as_deref() == Some(hash.as_str()) {
        return Ok(Some("admin token (HOOKD_ADMIN_TOKEN)".to_string()));
    }
    Ok(match state.store.find_token(&hash).await? {
        Some(found)
            if found.kind == TokenKind::Api
                && found.app_id.is_none()
                && found.is_live(now_millis()) =>
        {
            Some(format!(
                "org token \u{201c}{}\u{201d} ({})",
                found.name, found.id
            ))
        }
        _ => None,
    })
}

/// `POST /ui/login`: exchanges an org token for a session.
pub async fn sign_in(State(state): State<AppState>, Form(form): Form<SignInForm>) -> Response {
    let token = form.token.trim();
    // Every attempt counts against one shared budget, right or wrong, so guessing is as slow
    // as the API allows; a valid token's own budget applies from then on.
    if let Err(limited) = state.rate_limit.check("dashboard sign-in") {
        return Problem::from_api(limited);
    }
    let actor = match operator_named(&state, token).await {
        Ok(Some(actor)) => actor,
        Ok(None) => return SignIn::new(Some(
            "That token does not open the dashboard. Use an org API token (hookd token create) \
                 or HOOKD_ADMIN_TOKEN; application tokens and portal links cannot.",
        ))
        .into_response_with(StatusCode::UNAUTHORIZED),
        Err(err) => return Problem::from_api(err),
    };
    let expires_at = now_millis() + SESSION_MS;
    let session = match issue(
        &state.store,
        NewToken {
            prefix: "ui",
            app_id: None,
            name: &actor,
            kind: TokenKind::OperatorSession,
            expires_at: Some(expires_at),
            capabilities: None,
        },
    )
    .await
    {
        Ok(session) => session,
        Err(err) => return Problem::from_api(err.into()),
    };
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE_NAME}={session}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_MS / 1000
    );
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/logout`: revokes the session and forgets the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    session: OperatorSession,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(page) = session.check_csrf(&form.csrf) {
        return page;
    }
    if let Err(err) = state.store.revoke_token(&hash_token(&session.token)).await {
        return Problem::from_api(err.into());
    }
    let mut response = Redirect::to("/ui/").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("hookd_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `GET` on a form's address (a reload after a POST): back to the overview.
pub async fn back_home() -> Redirect {
    Redirect::to("/ui/")
}
