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
            ..Self::blank()
        }
    }

    /// Nothing to show and nothing allowed.
    fn blank() -> Self {
        Self {
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
    /// The page tells the script to forget its session (signed out, or the session ended).
    pub ends_session: bool,
}

impl Problem {
    pub fn new(heading: &str, detail: &str) -> Self {
        Self {
            chrome: Chrome::blank(),
            title: heading.to_string(),
            heading: heading.to_string(),
            detail: detail.to_string(),
            ends_session: false,
        }
    }

    /// The page of a session that is over.
    pub fn ending_session(mut self) -> Self {
        self.ends_session = true;
        self
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
    let page = page.ending_session();
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

/// Marks a page answered to a POST with the address it can be loaded from again, so htmx puts
/// that in the address bar instead of the form's action (reloading which would fail).
pub fn shown_at(mut response: Response, path: &str) -> Response {
    if let Ok(value) = axum::http::HeaderValue::from_str(path) {
        response.headers_mut().insert("hx-push-url", value);
    }
    response
}

/// `GET` on an action's address (a reload after a form without JavaScript): the page the
/// action belongs to. Only ids of the shape hookd gives are echoed into the redirect.
pub async fn back_to_page(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let safe = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let parts: Vec<&str> = path.trim_start_matches("/portal/").split('/').collect();
    let target = match parts.as_slice() {
        ["endpoints", id, _action] if safe(id) => format!("/portal/endpoints/{id}"),
        ["messages", id, "resend", _] if safe(id) => format!("/portal/messages/{id}"),
        _ => "/portal/".to_string(),
    };
    axum::response::Redirect::to(&target).into_response()
}

/// A time typed in a form, in UTC: `2026-12-06 14:00`, `2026-12-06T14:00` or `2026-12-06`.
/// Text rather than a date picker, whose format follows the browser's locale and would leave
/// `12/05/2026` ambiguous.
pub fn form_time(text: &str) -> Option<i64> {
    let text = text.trim();
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|day| day.and_hms_opt(0, 0, 0))
    })
    .map(|time| time.and_utc().timestamp_millis())
}

/// Unix ms as a form shows it (`2026-12-06 14:00`).
pub fn form_time_text(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A description split into plain text and `code` spans (between backticks), for the
/// template to render each as text: no markup from the catalog reaches the page.
pub fn code_spans(text: &str) -> Vec<(bool, String)> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| (i % 2 == 1, part.to_string()))
        .collect()
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
    fn form_times_are_utc_in_three_shapes() {
        let expected = Some(1_796_558_400_000);
        assert_eq!(form_time("2026-12-06 12:00"), expected);
        assert_eq!(form_time(" 2026-12-06T12:00 "), expected);
        assert_eq!(form_time("2026-12-06"), Some(1_796_515_200_000));
        assert_eq!(form_time("12/06/2026"), None);
        assert_eq!(form_text_round_trip(), "2026-12-06 12:00");
    }

    fn form_text_round_trip() -> String {
        form_time_text(form_time("2026-12-06 12:00").unwrap_or_default())
    }

    #[test]
    fn backticks_become_code_spans() {
        assert_eq!(
            code_spans("`data.status` says its state"),
            vec![
                (true, "data.status".into()),
                (false, " says its state".into())
            ]
        );
        assert_eq!(code_spans("plain"), vec![(false, "plain".into())]);
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
