//! The one place where errors become HTTP answers.
//!
//! Policy: handlers return [`ApiError`]. A deliberate error (not found, conflict, validation,
//! authentication) carries its status, a stable `code` and a `detail` written for the API user,
//! and is answered as `{"code": …, "detail": …}`. Anything else (a store failure) is logged once
//! here and answered as a generic 500 that reveals nothing of the internals. Validation errors
//! are 422 with `detail` as a list of `{loc, msg, type}` naming the field, as Svix answers.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;

/// One invalid field: where it is and what is wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Detail {
    Text(String),
    Fields(Vec<FieldError>),
}

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: Detail,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    detail: &'a Detail,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: Detail::Text(detail.into()),
            retry_after: None,
        }
    }

    /// The same error, with a `Retry-After` header of `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this token; retry after the time in Retry-After",
            )
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", detail)
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_access",
            "this token may not use this route",
        )
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// A 422 for one field, `loc` as `["body", "url"]`.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind: "value_error".into(),
        }])
    }

    /// A 422 for one field with its own `code`, for a request that is well formed but cannot
    /// be accepted as it is (the body keeps the shape of a validation error).
    pub(crate) fn unprocessable(code: &'static str, loc: &[&str], msg: impl Into<String>) -> Self {
        Self {
            code,
            ..Self::invalid_fields(vec![FieldError {
                loc: loc.iter().map(|s| s.to_string()).collect(),
                msg: msg.into(),
                kind: code.into(),
            }])
        }
    }

    pub(crate) fn invalid_fields(fields: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation",
            detail: Detail::Fields(fields),
            retry_after: None,
        }
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail as one sentence, for a page; a validation error's fields are in
    /// [`field_errors`](Self::field_errors).
    pub fn message(&self) -> String {
        match &self.detail {
            Detail::Text(text) => text.clone(),
            Detail::Fields(fields) => fields
                .iter()
                .map(|f| format!("{}: {}", f.loc.last().map_or("", String::as_str), f.msg))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// The invalid fields of a validation error (empty for any other error).
    pub fn field_errors(&self) -> &[FieldError] {
        match &self.detail {
            Detail::Fields(fields) => fields,
            Detail::Text(_) => &[],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            detail: &self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::Unavailable(reason) => {
                tracing::warn!(reason = %reason, "the database is unavailable; answered 503");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "the request was not stored: {reason}; retry after the time in \
                         Retry-After"
                    ),
                )
                .retry_after(5)
            }
            StoreError::Database(_) | StoreError::Locked(_) => {
                tracing::error!(error = %err, "store error while answering a request");
                ApiError::internal()
            }
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid(&["path"], rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(&["query"], rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            );
        }
        ApiError::bad_request(rejection.body_text())
    }
}

/// The body of every error answer but validation's.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the error body for the OpenAPI document"
)]
pub struct HttpErrorOut {
    /// A stable, machine-readable code such as `not_found` or `conflict`.
    code: String,
    /// What went wrong, for the person calling the API.
    detail: String,
}

/// The body of a 422: `detail` lists the fields that are not valid.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the error body for the OpenAPI document"
)]
pub struct ValidationErrorOut {
    /// `validation`, or `idempotency_key_reused` when an `idempotency-key` comes back with
    /// another request.
    code: String,
    detail: Vec<FieldError>,
}

/// The error answers any route may give.
#[derive(utoipa::IntoResponses)]
#[expect(
    dead_code,
    reason = "only describes the answers in the OpenAPI document; never built"
)]
pub enum ErrorResponses {
    /// The body is not valid JSON.
    #[response(status = 400)]
    BadRequest(#[to_schema] HttpErrorOut),
    /// The token is missing, malformed, unknown or revoked.
    #[response(status = 401)]
    Unauthorized(HttpErrorOut),
    /// The token may not use this route.
    #[response(status = 403)]
    Forbidden(HttpErrorOut),
    /// The resource does not exist (or belongs to another application).
    #[response(status = 404)]
    NotFound(HttpErrorOut),
    /// A uid or name is already taken.
    #[response(status = 409)]
    Conflict(HttpErrorOut),
    /// The body is larger than allowed.
    #[response(status = 413)]
    TooLarge(HttpErrorOut),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(HttpErrorOut),
    /// A field is not valid.
    #[response(status = 422)]
    Validation(#[to_schema] ValidationErrorOut),
    /// Too many requests for this token; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(HttpErrorOut),
}

/// Answers routes that do not exist.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

/// Answers a known route called with the wrong method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept this method",
    )
}
