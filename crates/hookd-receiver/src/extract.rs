//! The axum extractor: a handler that takes a [`Webhook<T>`] runs only for verified requests.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::{Verifier, VerifyError};

/// A verified webhook with its payload parsed as `T`.
///
/// Extracting it reads the body (within axum's body limit), verifies it with the [`Verifier`]
/// taken from the router's state (`Verifier: FromRef<S>`), then parses it as JSON. A request
/// that fails any step never reaches the handler: it gets the answer of a [`WebhookRejection`].
///
/// ```no_run
/// use axum::{routing::post, Router};
/// use hookd_receiver::{Verifier, Webhook};
///
/// async fn receive(webhook: Webhook<serde_json::Value>) -> axum::http::StatusCode {
///     println!("{} says {}", webhook.id, webhook.payload);
///     axum::http::StatusCode::NO_CONTENT
/// }
///
/// # fn build() -> Result<Router, hookd_receiver::VerifyError> {
/// let verifier = Verifier::new([std::env::var("WEBHOOK_SECRET").unwrap_or_default()])?;
/// let app: Router = Router::new().route("/webhooks", post(receive)).with_state(verifier);
/// # Ok(app) }
/// ```
#[derive(Debug, Clone)]
pub struct Webhook<T = serde_json::Value> {
    /// The `webhook-id`, the key to dedupe on (see [`crate::inbox`]).
    pub id: String,
    /// When this attempt was signed (seconds since the Unix epoch); not when the event happened.
    pub timestamp: i64,
    /// The body exactly as received and verified.
    pub body: Bytes,
    /// The body parsed as `T`.
    pub payload: T,
}

impl<S, T> FromRequest<S> for Webhook<T>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Verifier::from_ref(state);
        // The headers are needed after the body is taken; the copy is a few small strings.
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(WebhookRejection::Body)?;
        let verified = verifier
            .verify(&headers, &body)
            .map_err(WebhookRejection::Verify)?;
        let payload = serde_json::from_slice(&body).map_err(WebhookRejection::Payload)?;
        Ok(Self {
            id: verified.id,
            timestamp: verified.timestamp,
            body,
            payload,
        })
    }
}

/// Why [`Webhook`] refused a request. As a response it is the status and a one-line reason in
/// plain text, which the sender records with the attempt; it never includes secrets or the
/// expected signature.
#[derive(Debug)]
pub enum WebhookRejection {
    /// The body could not be read (too large: 413; broken stream: 400).
    Body(BytesRejection),
    /// Verification failed: 400 for a malformed request, 401 for a bad signature or timestamp.
    Verify(VerifyError),
    /// The body is authentic but is not the JSON the handler expects: 400.
    Payload(serde_json::Error),
}

impl WebhookRejection {
    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Body(rejection) => rejection.status(),
            Self::Verify(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Payload(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn reason(&self) -> String {
        match self {
            Self::Body(rejection) => rejection.body_text(),
            Self::Verify(error) => error.to_string(),
            Self::Payload(error) => format!("invalid payload: {error}"),
        }
    }
}

impl std::fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for WebhookRejection {}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let reason = self.reason();
        // Logged here, once: the handler never sees a rejected request.
        tracing::warn!(status = status.as_u16(), %reason, "webhook rejected");
        (status, reason).into_response()
    }
}
