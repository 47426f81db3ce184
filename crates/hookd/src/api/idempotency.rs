//! `idempotency-key`: a POST retried with the same key is answered once.
//!
//! One middleware wraps every route. A POST that carries the header is authenticated here (the
//! key belongs to the token's scope, `org` or one application, so tenants never collide), its
//! body is read, and the request is fingerprinted (method, path and query, body). The store
//! then decides, atomically:
//! - the key is free: this request claims it, runs, and its answer (status and body) is saved
//!   for 24 hours;
//! - the key has a saved answer for the same fingerprint: that answer is sent again, byte for
//!   byte, with `idempotent-replayed: true`;
//! - the key was used for another request: 422 `idempotency_key_reused` (with the `detail` of
//!   a validation error naming the header);
//! - a request with the key is still running: 409 `idempotency_in_progress`.
//!
//! Server errors are not saved (the key is freed) so a retry runs the request again, which is
//! what the Svix SDKs do after a 5xx. A claimed request runs to its end even if the client goes
//! away, so the answer a retry gets is the one the first attempt produced. A request that dies
//! with its process holds the key for [`LOCK`] at most. A crash between a handler's commit and
//! saving its answer (one write) would let a retry run again: for messages, `eventId` is the
//! dedupe key that holds across that too.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::domain::time::now_millis;
use crate::store::{
    IdempotencyClaim, IdempotencyKey, IdempotencyState, SharedStore, StoredResponse,
};

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";
/// The header marking an answer as a replay.
pub(crate) const REPLAYED: &str = "idempotent-replayed";
/// How long an answer is replayed.
pub(crate) const KEPT_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a running request holds its key before it counts as dead.
pub(crate) const LOCK: Duration = Duration::from_secs(60);
/// The longest key accepted.
const MAX_KEY_LEN: usize = 256;

/// The middleware: passes through everything but a POST with an `idempotency-key`.
pub(crate) async fn middleware(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    once(state, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn once(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let key = parse_key(request.headers().get(HEADER))?;
    let (mut parts, body) = request.into_parts();
    // The handler reuses this principal (see `Principal`), so the token is checked and counted
    // against the rate limit once.
    let principal = Principal::from_request_parts(&mut parts, &state).await?;
    parts.extensions.insert(principal.clone());
    // Read the body the way handlers do, under the same size limit.
    let mut probe = Request::new(body);
    *probe.extensions_mut() = parts.extensions.clone();
    let bytes = Bytes::from_request(probe, &state).await?;
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let fingerprint = fingerprint(&parts.method, path, &bytes);
    let key = IdempotencyKey {
        scope: scope(&principal),
        key,
    };
    let now = now_millis();
    let claim = IdempotencyClaim {
        key: key.clone(),
        fingerprint: fingerprint.clone(),
        now,
        locked_until: now + millis(LOCK),
        expires_at: now + millis(KEPT_FOR),
    };
    match state.store.claim_idempotency_key(&claim).await? {
        IdempotencyState::Acquired => {}
        IdempotencyState::Finished {
            fingerprint: theirs,
            response,
        } if theirs == fingerprint => return Ok(replay(response)),
        IdempotencyState::InFlight {
            fingerprint: theirs,
        } if theirs == fingerprint => return Err(in_progress()),
        IdempotencyState::Finished { .. } | IdempotencyState::InFlight { .. } => {
            return Err(reused())
        }
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let store = state.store.clone();
    let saving = key.clone();
    // Spawned so that a client hanging up does not cancel the request halfway: its answer is
    // saved for the retry that follows.
    let run = tokio::spawn(tracing::Instrument::in_current_span(async move {
        let response = next.run(request).await;
        save(&store, &saving, response).await
    }));
    match run.await {
        Ok(response) => Ok(response),
        Err(err) => {
            // The handler panicked: free the key so a retry runs again.
            warn!(error = %err, "a request holding an idempotency key failed");
            release(&state.store, &key).await;
            Err(ApiError::internal())
        }
    }
}

/// Frees a key whose request failed, so that a retry runs it again. The failure was often the
/// database's (a cut connection, a full disk), so freeing is tried a few times, briefly; if it
/// still fails, the key frees itself when its lock lapses and retries meanwhile get a 409.
async fn release(store: &SharedStore, key: &IdempotencyKey) {
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match store.release_idempotency_key(key).await {
            Ok(_) => return,
            Err(err) => {
                warn!(error = %err, "freeing an idempotency key failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    warn!("an idempotency key could not be freed; it frees itself when its lock lapses");
}

/// Keeps the answer for replay (all but server errors, which free the key) and sends it on.
async fn save(store: &SharedStore, key: &IdempotencyKey, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    if parts.status.is_server_error() {
        release(store, key).await;
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        let _ = store.release_idempotency_key(key).await;
        return ApiError::internal().into_response();
    };
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: bytes.to_vec(),
    };
    if let Err(err) = store.save_idempotent_response(key, &stored).await {
        warn!(error = %err, "saving an idempotent answer failed; the key frees itself when its lock lapses");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(value) = stored
        .content_type
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn parse_key(value: Option<&HeaderValue>) -> Result<String, ApiError> {
    value
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::invalid(
                &["header", HEADER],
                format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        })
}

/// Whose keys a caller shares: every org token one set, each application its own.
fn scope(principal: &Principal) -> String {
    match principal {
        Principal::Org => "org".to_string(),
        Principal::App(app_id) => format!("app:{app_id}"),
    }
}

/// SHA-256 of the method, path with query, and body, hex encoded.
pub fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(path_and_query.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this idempotency-key is still being processed; retry it shortly",
    )
}

fn reused() -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        &["header", HEADER],
        "this key was used for a different request; use a new key for a new request",
    )
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_cover_method_path_and_body() {
        let base = fingerprint(&Method::POST, "/api/v1/app/a/msg", b"{}");
        assert_eq!(base.len(), 64);
        assert_eq!(base, fingerprint(&Method::POST, "/api/v1/app/a/msg", b"{}"));
        assert_ne!(base, fingerprint(&Method::PUT, "/api/v1/app/a/msg", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/api/v1/app/b/msg", b"{}"));
        assert_ne!(
            base,
            fingerprint(&Method::POST, "/api/v1/app/a/msg", b"{ }")
        );
    }

    #[test]
    fn keys_are_bounded() {
        assert_eq!(
            parse_key(Some(&HeaderValue::from_static("abc"))).expect("valid"),
            "abc"
        );
        assert!(parse_key(Some(&HeaderValue::from_static(" "))).is_err());
        let long = HeaderValue::from_str(&"k".repeat(MAX_KEY_LEN + 1)).expect("header");
        assert!(parse_key(Some(&long)).is_err());
    }
}
