//! Bearer tokens: who is calling, and what they may reach.
//!
//! Tokens are 256 random bits with a readable prefix (`hookd_org_`, `hookd_app_`). Only their
//! SHA-256 is stored, so a leaked database reveals no usable token; the hash of a high-entropy
//! token needs no slow password hash. An application token reaches only its own application:
//! another application's id answers 404, exactly as if it did not exist.

use axum::extract::{FromRequestParts, Path as AxumPath, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorResponses};
use super::extract::Json;
use super::AppState;
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::{ApiToken, Application, SharedStore, StoreResult, TokenKind};

/// The caller of a request, once its token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// May do everything.
    Org,
    /// May reach one application only.
    App(String),
}

impl Principal {
    /// Org-only routes: the catalog and the list of applications.
    pub(crate) fn require_org(&self) -> Result<(), ApiError> {
        match self {
            Principal::Org => Ok(()),
            Principal::App(_) => Err(ApiError::forbidden()),
        }
    }

    /// Whether this caller may see the application; another tenant's is "not found".
    pub(crate) fn check_app(&self, app: &Application) -> Result<(), ApiError> {
        match self {
            Principal::Org => Ok(()),
            Principal::App(id) if *id == app.id => Ok(()),
            Principal::App(_) => Err(ApiError::not_found("application")),
        }
    }
}

/// SHA-256 of a token, hex encoded: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates and stores a new API token; returns its only clear-text copy.
pub async fn issue_token(
    store: &SharedStore,
    app_id: Option<&str>,
    name: &str,
) -> StoreResult<String> {
    let scope = if app_id.is_some() { "app" } else { "org" };
    issue(
        store,
        NewToken {
            prefix: scope,
            app_id,
            name,
            kind: TokenKind::Api,
            expires_at: None,
            capabilities: None,
        },
    )
    .await
}

/// A token to create.
pub(crate) struct NewToken<'a> {
    /// The readable part after `hookd_`, saying what the token is.
    pub prefix: &'a str,
    pub app_id: Option<&'a str>,
    pub name: &'a str,
    pub kind: TokenKind,
    pub expires_at: Option<i64>,
    pub capabilities: Option<Vec<String>>,
}

/// Creates and stores a token of any kind; returns its only clear-text copy.
pub(crate) async fn issue(store: &SharedStore, new: NewToken<'_>) -> StoreResult<String> {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let token = format!("hookd_{}_{}", new.prefix, BASE64URL.encode(random));
    store
        .create_token(&ApiToken {
            id: new_id(IdPrefix::Token),
            hash: hash_token(&token),
            name: new.name.to_string(),
            app_id: new.app_id.map(str::to_string),
            created_at: now_millis(),
            revoked: false,
            kind: new.kind,
            expires_at: new.expires_at,
            capabilities: new.capabilities,
        })
        .await?;
    Ok(token)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already authenticated by a middleware (idempotency): the token is not checked or
        // counted twice.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let hash = hash_token(bearer_token(&parts.headers)?);
        let principal = if state.admin_token_hash.as_deref() == Some(hash.as_str()) {
            Principal::Org
        } else {
            // Portal keys and sessions are tokens too, but never open the API: a read-only
            // portal session must not write through it.
            match state.store.find_token(&hash).await? {
                Some(found) if found.kind == TokenKind::Api && found.is_live(now_millis()) => {
                    match found.app_id {
                        Some(app_id) => Principal::App(app_id),
                        None => Principal::Org,
                    }
                }
                _ => return Err(ApiError::unauthorized("the token is not valid")),
            }
        };
        state.rate_limit.check(&hash)?;
        Ok(principal)
    }
}

/// `POST /api/v1/auth/logout`: revokes the token the request carries (as Svix's route does),
/// an API token or a portal session. `HOOKD_ADMIN_TOKEN` lives in the configuration and cannot
/// be revoked this way.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "Authentication",
    operation_id = "v1.authentication.logout",
    summary = "Revoke the token of this request",
    responses((status = 204, description = "Done"), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let hash = hash_token(bearer_token(&headers)?);
    if state.admin_token_hash.as_deref() == Some(hash.as_str()) {
        return Err(ApiError::bad_request(
            "HOOKD_ADMIN_TOKEN is set in the configuration; remove it there",
        ));
    }
    state.rate_limit.check(&hash)?;
    match state.store.find_token(&hash).await? {
        Some(found) if found.kind != TokenKind::PortalLink && found.is_live(now_millis()) => {
            state.store.revoke_token(&hash).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::unauthorized("the token is not valid")),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PortalAccessOut {
    /// The magic link to the merchant portal: its one-time key is in the fragment.
    url: String,
    /// An application token for the API, valid for the same time.
    token: String,
}

/// What the merchant portal lets a session do, as Svix names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) enum PortalCapability {
    /// See endpoints, messages, attempts and the event catalog.
    ViewBase,
    ViewEndpointSecret,
    ManageEndpointSecret,
    /// Accepted for compatibility; hookd has no transformations.
    ManageTransformations,
    /// Resend, recover and send test events.
    CreateAttempts,
    /// Add, edit, enable, disable and delete endpoints.
    ManageEndpoint,
}

impl PortalCapability {
    pub const ALL: [PortalCapability; 6] = [
        PortalCapability::ViewBase,
        PortalCapability::ViewEndpointSecret,
        PortalCapability::ManageEndpointSecret,
        PortalCapability::ManageTransformations,
        PortalCapability::CreateAttempts,
        PortalCapability::ManageEndpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PortalCapability::ViewBase => "ViewBase",
            PortalCapability::ViewEndpointSecret => "ViewEndpointSecret",
            PortalCapability::ManageEndpointSecret => "ManageEndpointSecret",
            PortalCapability::ManageTransformations => "ManageTransformations",
            PortalCapability::CreateAttempts => "CreateAttempts",
            PortalCapability::ManageEndpoint => "ManageEndpoint",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Seven days, as Svix's portal links last by default.
const DEFAULT_PORTAL_EXPIRY_SECS: u64 = 7 * 24 * 60 * 60;
/// The longest a portal link may last.
const MAX_PORTAL_EXPIRY_SECS: u64 = 30 * 24 * 60 * 60;

/// The body of `app-portal-access`, as Svix defines it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppPortalAccessIn {
    /// Seconds the link and its session last (default 7 days, at most 30).
    expiry: Option<u64>,
    /// A session that only looks: the same as capabilities `[ViewBase]`.
    #[serde(default)]
    read_only: bool,
    /// What the session may do; every capability when absent.
    capabilities: Option<Vec<PortalCapability>>,
    /// Accepted for compatibility and ignored.
    #[allow(dead_code)]
    session_id: Option<String>,
}

impl AppPortalAccessIn {
    /// The capabilities the link grants, `ViewBase` always among them.
    fn capabilities(&self) -> Vec<String> {
        let mut granted: Vec<PortalCapability> = if self.read_only {
            vec![PortalCapability::ViewBase]
        } else {
            self.capabilities
                .clone()
                .unwrap_or_else(|| PortalCapability::ALL.to_vec())
        };
        if !granted.contains(&PortalCapability::ViewBase) {
            granted.insert(0, PortalCapability::ViewBase);
        }
        let mut names: Vec<String> = granted.iter().map(|c| c.name().to_string()).collect();
        names.dedup();
        names
    }
}

/// `POST /api/v1/auth/app-portal-access/{app_id}`: a magic link to the merchant portal for one
/// application, and an application token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/app-portal-access/{app_id}",
    tag = "Authentication",
    operation_id = "v1.authentication.app-portal-access",
    summary = "Create a merchant portal link for one application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = AppPortalAccessIn,
    responses((status = 200, body = PortalAccessOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn app_portal_access(
    State(state): State<AppState>,
    principal: Principal,
    AxumPath(app_key): AxumPath<String>,
    Json(body): Json<AppPortalAccessIn>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require_org()?;
    let expiry = body.expiry.unwrap_or(DEFAULT_PORTAL_EXPIRY_SECS);
    if !(60..=MAX_PORTAL_EXPIRY_SECS).contains(&expiry) {
        return Err(ApiError::invalid(
            &["body", "expiry"],
            format!("must be between 60 and {MAX_PORTAL_EXPIRY_SECS} seconds"),
        ));
    }
    let app = state
        .store
        .get_app(&app_key)
        .await?
        .ok_or_else(|| ApiError::not_found("application"))?;
    let expires_at = now_millis() + i64::try_from(expiry * 1000).unwrap_or(i64::MAX);
    let token = issue(
        &state.store,
        NewToken {
            prefix: "app",
            app_id: Some(&app.id),
            name: "app portal access",
            kind: TokenKind::Api,
            expires_at: Some(expires_at),
            capabilities: None,
        },
    )
    .await?;
    let url = portal_link(&state, &app.id, expires_at, body.capabilities()).await?;
    Ok((StatusCode::OK, AxumJson(PortalAccessOut { url, token })))
}

/// Creates a one-time portal key for an application and answers the magic link that carries
/// it. The key travels in the fragment, which browsers never send to a server or put in a
/// Referer: it reaches only the portal page's own script.
pub(crate) async fn portal_link(
    state: &AppState,
    app_id: &str,
    expires_at: i64,
    capabilities: Vec<String>,
) -> StoreResult<String> {
    let key = issue(
        &state.store,
        NewToken {
            prefix: "link",
            app_id: Some(app_id),
            name: "portal link",
            kind: TokenKind::PortalLink,
            expires_at: Some(expires_at),
            capabilities: Some(capabilities),
        },
    )
    .await?;
    Ok(format!(
        "{}/portal/#key={key}",
        state.public_url.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_hex() {
        let hash = hash_token("hookd_org_example");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash_token("hookd_org_example"));
        assert_ne!(hash, hash_token("hookd_org_examplf"));
    }
}
