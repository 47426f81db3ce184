//! Extractors that turn a request into typed input or a clear 4xx.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::{ApiError, FieldError};

/// A path extractor whose rejection is an [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A query extractor whose rejection is an [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A JSON body: malformed JSON is a 400, a wrong field a 422 naming the field, an empty body is
/// read as `{}` (the Svix SDKs send no body to some POST routes).
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        let bytes = Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse(b"{}").map(Json);
        }
        if declared_json == Some(false) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON with content-type application/json",
            ));
        }
        parse(&bytes).map(Json)
    }
}

/// Parses JSON, reporting the path of the field that does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
            }
            // A field error in a document that is not JSON as a whole is a syntax problem.
            Category::Data if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
                ApiError::bad_request("the body is not valid JSON")
            }
            Category::Data => field_error(&path, &inner),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn field_error(path: &str, err: &serde_json::Error) -> ApiError {
    let mut loc = vec!["body".to_string()];
    if path != "." {
        loc.extend(path.split('.').map(str::to_string));
    }
    // serde's message ends with " at line 1 column 9", which means nothing to an API user.
    let msg = err.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if let Some(missing) = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        loc.push(missing.to_string());
    }
    ApiError::invalid_fields(vec![FieldError {
        loc,
        msg,
        kind: "type_error".into(),
    }])
}
