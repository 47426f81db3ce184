//! The portal's static files, compiled into the binary: nothing is fetched at run time.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;

/// htmx from its npm package (`htmx.org`), committed as one file; the version is in the name.
pub const HTMX: &str = "htmx-2.0.8.min.js";

const FILES: &[(&str, &str, &str)] = &[
    (
        HTMX,
        "text/javascript; charset=utf-8",
        include_str!("../../assets/htmx-2.0.8.min.js"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/portal.js"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/portal.css"),
    ),
];

/// `GET /portal/assets/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    let Some((name, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    // A versioned file never changes; the others change with hookd, so browsers revalidate.
    let cache = if *name == HTMX {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, cache)],
        *body,
    )
        .into_response()
}

/// `GET /portal/brand.css`: the platform's accent colour. A stylesheet rather than an inline
/// style, so the Content-Security-Policy can forbid inline styles.
pub async fn brand_css(State(state): State<AppState>) -> Response {
    // The colour was checked at start to be `#rrggbb`.
    let accent = &state.portal.accent_color;
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        format!(":root {{ --accent: {accent}; }}\n"),
    )
        .into_response()
}
