//! The portal's pages: one template each (`templates/portal/`), the data they show, and the
//! small formatting helpers they share. Every value is escaped by the template engine; nothing
//! from outside is ever marked safe.

use askama::Template;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::session::{clear_cookie, PortalSession};
use super::{OrPage, PageResult};
use crate::api::auth::PortalCapability;
use crate::api::AppState;

/// What every page shows around its content.
pub struct Chrome {
    pub brand: String,
    pub logo: Option<String>,
    /// The merchant's name; empty when signed out.
    pub app_name: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// Empty when signed out.
    pub csrf: String,
    pub signed_in: bool,
    pub manage_endpoint: bool,
    pub view_secret: bool,
    pub manage_secret: bool,
    pub create_attempts: bool,
}

impl Chrome {
    pub fn new(state: &AppState, session: &PortalSession, nav: &'static str) -> Self {
        Self {
            brand: state.portal.brand_name.clone(),
            logo: state.portal.logo_url.as_ref().map(|u| u.to_string()),
            app_name: session.app_name.clone(),
            nav,
            csrf: session.csrf_token(),
            signed_in: true,
            manage_endpoint: session.can(PortalCapability::ManageEndpoint),
            view_secret: session.can(PortalCapability::ViewEndpointSecret),
            manage_secret: session.can(PortalCapability::ManageEndpointSecret),
            create_attempts: session.can(PortalCapability::CreateAttempts),
        }
    }

    fn signed_out(state: &AppState) -> Self {
        Self {
            brand: state.portal.brand_name.clone(),
            logo: state.portal.logo_url.as_ref().map(|u| u.to_string()),
            app_name: String::new(),
            nav: "",
            csrf: String::new(),
            signed_in: false,
            manage_endpoint: false,
            view_secret: false,
            manage_secret: false,
            create_attempts: false,
        }
    }

    /// Whether the session may change anything at all.
    pub fn read_only(&self) -> bool {
        !(self.manage_endpoint || self.manage_secret || self.create_attempts)
    }
}

/// Renders a page with a status.
pub fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a portal page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// The page a browser gets before it has a session: its script signs in with the link's key,
/// or with the session it keeps, and loads the page asked for.
#[derive(Template)]
#[template(path = "portal/shell.html")]
pub struct Shell {
    pub chrome: Chrome,
    pub title: String,
}

impl Shell {
    pub fn page(state: &AppState) -> Self {
        Self {
            chrome: Chrome::signed_out(state),
            title: "Opening".into(),
        }
    }

    pub fn into_response_with(self, status: StatusCode, _state: &AppState) -> Response {
        render(&self, status)
    }
}

/// An error, or the end of a session, as a page.
#[derive(Template)]
#[template(path = "portal/problem.html")]
pub struct Problem {
    pub chrome: Chrome,
    pub title: String,
    pub heading: String,
    pub detail: String,
}

impl Problem {
    pub fn new(heading: &str, detail: &str) -> Self {
        Self {
            chrome: Chrome {
                brand: String::new(),
                logo: None,
                app_name: String::new(),
                nav: "",
                csrf: String::new(),
                signed_in: false,
                manage_endpoint: false,
                view_secret: false,
                manage_secret: false,
                create_attempts: false,
            },
            title: heading.to_string(),
            heading: heading.to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn into_response_with(mut self, status: StatusCode, state: &AppState) -> Response {
        let signed_in = self.chrome.signed_in;
        self.chrome = Chrome::signed_out(state);
        self.chrome.signed_in = signed_in;
        render(&self, status)
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /portal/logout`: ends the session (as `POST /api/v1/auth/logout` does) and forgets
/// the cookie; the page tells the script to forget its copy.
pub async fn logout(
    State(state): State<AppState>,
    session: PortalSession,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    session.check_csrf(&form.csrf).or_page(&state)?;
    state
        .store
        .revoke_token(&session.token_hash())
        .await
        .or_page(&state)?;
    let mut page = Problem::new(
        "You are signed out",
        "Open the webhooks portal again from your dashboard to sign back in.",
    );
    page.title = "Signed out".into();
    let mut response = page.into_response_with(StatusCode::OK, &state);
    response.headers_mut().insert(SET_COOKIE, clear_cookie());
    Ok(response)
}

/// Answers a successful change: a redirect to the page that shows it. htmx follows
/// `HX-Location` with the session header and puts the URL in the address bar; a plain form
/// follows the 303.
pub fn see_other(headers: &HeaderMap, path: &str) -> Response {
    if super::session::is_htmx(headers) {
        let location = serde_json::json!({ "path": path, "target": "body" }).to_string();
        return (StatusCode::OK, [("hx-location", location)]).into_response();
    }
    axum::response::Redirect::to(path).into_response()
}

/// Unix ms as `2026-12-06 11:44:07 UTC`.
pub fn when(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The most of a payload or response body a page shows.
pub const SHOWN_BYTES: usize = 64 * 1024;

/// A body as a page shows it: JSON pretty-printed when it is JSON of reasonable size and
/// depth, else the raw text; cut at [`SHOWN_BYTES`]. serde_json refuses nesting deeper than
/// 128 levels, so a hostile payload falls back to raw text instead of exhausting the stack.
pub fn shown_body(text: &str) -> (String, bool) {
    let pretty = if text.len() <= 4 * SHOWN_BYTES {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
    } else {
        None
    };
    let full = pretty.unwrap_or_else(|| text.to_string());
    if full.len() <= SHOWN_BYTES {
        return (full, false);
    }
    let mut end = SHOWN_BYTES;
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    (full[..end].to_string(), true)
}

/// One bar of a delivery chart: successes stacked on failures, in SVG units.
pub struct Bar {
    pub x: u32,
    pub ok_y: u32,
    pub ok_h: u32,
    pub fail_y: u32,
    pub fail_h: u32,
    pub label: String,
}

/// Chart height in SVG units.
const CHART_H: u32 = 32;

/// Bars for `counts` (successes, failures) per bucket, scaled to the busiest bucket.
pub fn bars(counts: &[(u64, u64)], bucket_label: impl Fn(usize) -> String) -> Vec<Bar> {
    let most = counts
        .iter()
        .map(|(ok, fail)| ok + fail)
        .max()
        .unwrap_or(0)
        .max(1);
    counts
        .iter()
        .enumerate()
        .map(|(i, (ok, fail))| {
            let scale = |n: u64| -> u32 {
                let h = (n * u64::from(CHART_H)).div_ceil(most);
                u32::try_from(h).unwrap_or(CHART_H)
            };
            let fail_h = scale(*fail);
            let ok_h = scale(*ok).min(CHART_H - fail_h);
            Bar {
                x: u32::try_from(i).unwrap_or(0) * 5,
                fail_y: CHART_H - fail_h,
                fail_h,
                ok_y: CHART_H - fail_h - ok_h,
                ok_h,
                label: format!("{}: {ok} delivered, {fail} failed", bucket_label(i)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_json_is_shown_raw_not_parsed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (shown, cut) = shown_body(&deep);
        assert!(cut);
        assert_eq!(shown.len(), SHOWN_BYTES);
    }

    #[test]
    fn json_is_pretty_printed() {
        let (shown, cut) = shown_body(r#"{"a":{"b":1}}"#);
        assert!(!cut);
        assert_eq!(shown, "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        let text = "é".repeat(SHOWN_BYTES);
        let (shown, cut) = shown_body(&text);
        assert!(cut);
        assert!(shown.len() <= SHOWN_BYTES);
    }

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        let drawn = bars(&[(0, 0), (10, 0), (5, 5)], |i| i.to_string());
        assert_eq!(drawn[0].ok_h + drawn[0].fail_h, 0);
        assert_eq!(drawn[1].ok_h, CHART_H);
        assert_eq!(drawn[2].ok_h + drawn[2].fail_h, CHART_H);
        assert_eq!(drawn[2].fail_y + drawn[2].fail_h, CHART_H);
    }
}
