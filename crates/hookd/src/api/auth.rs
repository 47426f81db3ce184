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
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorResponses};
use super::AppState;
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::{ApiToken, Application, SharedStore, StoreResult};

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

/// Creates and stores a new token; returns its only clear-text copy.
pub async fn issue_token(
    store: &SharedStore,
    app_id: Option<&str>,
    name: &str,
) -> StoreResult<String> {
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let scope = if app_id.is_some() { "app" } else { "org" };
    let token = format!("hookd_{scope}_{}", BASE64URL.encode(random));
    store
        .create_token(&ApiToken {
            id: new_id(IdPrefix::Token),
            hash: hash_token(&token),
            name: name.to_string(),
            app_id: app_id.map(str::to_string),
            created_at: now_millis(),
            revoked: false,
        })
        .await?;
    Ok(token)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already authenticated by a middleware (idempotency): the token is not checked or
        // counted twice.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let hash = hash_token(token);
        let principal = if state.admin_token_hash.as_deref() == Some(hash.as_str()) {
            Principal::Org
        } else {
            match state.store.find_token(&hash).await? {
                Some(found) if !found.revoked => match found.app_id {
                    Some(app_id) => Principal::App(app_id),
                    None => Principal::Org,
                },
                _ => return Err(ApiError::unauthorized("the token is not valid")),
            }
        };
        state.rate_limit.check(&hash)?;
        parts.extensions.insert(TokenHash(hash));
        Ok(principal)
    }
}

/// The hash of the token a request was authenticated with.
#[derive(Clone)]
pub(crate) struct TokenHash(String);

/// `POST /api/v1/auth/logout`: revokes the token the request carries (as Svix's route does).
/// `HOOKD_ADMIN_TOKEN` lives in the configuration and cannot be revoked this way.
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
    _principal: Principal,
    axum::Extension(TokenHash(hash)): axum::Extension<TokenHash>,
) -> Result<StatusCode, ApiError> {
    if state.admin_token_hash.as_deref() == Some(hash.as_str()) {
        return Err(ApiError::bad_request(
            "HOOKD_ADMIN_TOKEN is set in the configuration; remove it there",
        ));
    }
    state.store.revoke_token(&hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PortalAccessOut {
    url: String,
    token: String,
}

/// `POST /api/v1/auth/app-portal-access/{app_id}`: an application token for one merchant.
#[utoipa::path(
    post,
    path = "/api/v1/auth/app-portal-access/{app_id}",
    tag = "Authentication",
    operation_id = "v1.authentication.app-portal-access",
    summary = "Create a token for one application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 200, body = PortalAccessOut), ErrorResponses),
    security(("bearer" = []))
)]
pub(crate) async fn app_portal_access(
    State(state): State<AppState>,
    principal: Principal,
    AxumPath(app_key): AxumPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require_org()?;
    let app = state
        .store
        .get_app(&app_key)
        .await?
        .ok_or_else(|| ApiError::not_found("application"))?;
    let token = issue_token(&state.store, Some(&app.id), "app portal access").await?;
    // Until hookd serves a consumer portal page, the URL is the application's API root, where
    // this token works.
    let url = format!("/api/v1/app/{}", app.id);
    Ok((StatusCode::OK, AxumJson(PortalAccessOut { url, token })))
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
