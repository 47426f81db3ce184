//! The OpenAPI document of hookd's API, generated from the handlers, and its reference page.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{FieldError, HttpErrorOut, ValidationErrorOut};
use super::{
    apps, attempts, auth, certify, endpoints, event_types, feed, messages, recover, send_example,
};

/// The whole API, as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookd",
        description = "Webhook delivery with a Svix-compatible API: applications (merchants), \
            their endpoints, the event type catalog, messages, and every delivery attempt. \
            Authenticate with `Authorization: Bearer <token>`. Any POST may carry an \
            `idempotency-key` header (up to 256 characters): a retry with the same key and body \
            gets the first answer again for 24 hours, with `idempotent-replayed: true`; the same \
            key with another body is a 422 `idempotency_key_reused`, and while the first \
            request still runs, a 409 `idempotency_in_progress`.",
        license(name = "Apache-2.0")
    ),
    paths(
        apps::list, apps::create, apps::read, apps::replace, apps::patch, apps::remove,
        endpoints::list, endpoints::create, endpoints::read, endpoints::replace,
        endpoints::patch, endpoints::remove, endpoints::read_secret, endpoints::rotate_secret,
        endpoints::read_headers, endpoints::replace_headers, endpoints::patch_headers,
        endpoints::stats, certify::check, certify::reports, recover::recover, send_example::send_example,
        event_types::list, event_types::create, event_types::read, event_types::replace,
        event_types::patch, event_types::remove,
        messages::create, messages::list, messages::read, feed::read, messages::expunge_content,
        attempts::by_endpoint, attempts::by_message, attempts::read,
        attempts::message_endpoints, attempts::endpoint_messages, attempts::resend,
        recover::read,
        auth::app_portal_access, auth::logout,
        super::health, super::ping, openapi_json,
    ),
    components(schemas(HttpErrorOut, ValidationErrorOut, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "Application", description = "The platform's merchants"),
        (name = "Endpoint", description = "Where an application's webhooks go"),
        (name = "Event Type", description = "The event type catalog"),
        (name = "Message", description = "Events posted by the platform"),
        (name = "Message Attempt", description = "What happened to each message at each endpoint"),
        (name = "Background Task", description = "Jobs the workers run in batches, such as a recovery"),
        (name = "Authentication", description = "Tokens"),
        (name = "Health", description = "Liveness and readiness"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as pretty JSON, as served and as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "Health",
    operation_id = "openapi",
    summary = "This API's OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

const REDOC: &str = include_str!("../../assets/redoc.standalone.js");

/// `GET /api/v1/docs`: the API reference, rendered in the browser by the bundled ReDoc.
pub(crate) async fn reference_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hookd API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="/api/v1/docs/redoc.standalone.js"></script></body></html>"#,
    )
}

/// The ReDoc bundle, served by hookd itself: no network is needed to read the reference.
pub(crate) async fn redoc_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC,
    )
}
