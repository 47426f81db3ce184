//! What every dashboard page shares: the frame around it, the sign-in and problem pages, and
//! small formatting helpers. Every value is escaped by the template engine.

use askama::Template;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::session::OperatorSession;
use crate::api::error::ApiError;
use crate::portal::pages::render;

pub use crate::portal::pages::{bars, form_time, shown_body, when, Bar};

/// The frame of a signed-in page.
pub struct Chrome {
    /// Who is signed in.
    pub actor: String,
    pub csrf: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
}

impl Chrome {
    pub fn new(session: &OperatorSession, nav: &'static str) -> Self {
        Self {
            actor: session.actor.clone(),
            csrf: session.csrf_token(),
            nav,
        }
    }

    fn signed_out() -> Self {
        Self {
            actor: String::new(),
            csrf: String::new(),
            nav: "",
        }
    }
}

/// The sign-in form.
#[derive(Template)]
#[template(path = "dashboard/signin.html")]
pub struct SignIn {
    pub chrome: Chrome,
    pub title: String,
    pub error: Option<&'static str>,
}

impl SignIn {
    pub fn new(error: Option<&'static str>) -> Self {
        Self {
            chrome: Chrome::signed_out(),
            title: "Sign in".into(),
            error,
        }
    }

    pub fn into_response_with(self, status: StatusCode) -> Response {
        render(&self, status)
    }
}

/// An error as a page.
#[derive(Template)]
#[template(path = "dashboard/problem.html")]
pub struct Problem {
    pub chrome: Chrome,
    pub title: String,
    pub detail: String,
}

impl Problem {
    pub fn new(title: &str, detail: &str) -> Self {
        Self {
            chrome: Chrome::signed_out(),
            title: title.into(),
            detail: detail.into(),
        }
    }

    pub fn into_response_with(self, status: StatusCode) -> Response {
        render(&self, status)
    }

    /// What the API answered, as a page with the API's status.
    pub fn from_api(err: ApiError) -> Response {
        let status = err.status();
        let detail = if status.is_server_error() {
            "hookd could not answer just now. Try again in a moment.".to_string()
        } else {
            format!("{}.", crate::portal::capitalize(&err.message()))
        };
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        Self::new(title, &detail).into_response_with(status)
    }
}

/// Turns a handler's error into its page, for `?`.
pub trait OrProblem<T> {
    fn or_problem(self) -> Result<T, Response>;
}

impl<T, E: Into<ApiError>> OrProblem<T> for Result<T, E> {
    fn or_problem(self) -> Result<T, Response> {
        self.map_err(|err| Problem::from_api(err.into()))
    }
}

/// A page handler's result.
pub type PageResult = Result<Response, Response>;

/// The "not found" page for `what`.
pub fn not_found(what: &str) -> Response {
    Problem::from_api(ApiError::not_found(what))
}

/// How long ago `millis` was, roughly (`4 s`, `12 min`, `3 h`, `2 d`).
pub fn age(now: i64, millis: i64) -> String {
    let seconds = (now - millis).max(0) / 1000;
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7_199 => format!("{} min", seconds / 60),
        7_200..=172_799 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// The dashboard's one script: the copy buttons. Served from the binary, like the portal's.
pub async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../assets/dashboard.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_sensible_unit() {
        assert_eq!(age(10_000, 6_000), "4 s");
        assert_eq!(age(0, -5 * 60_000), "5 min");
        assert_eq!(age(0, -3 * 3_600_000), "3 h");
        assert_eq!(age(0, -3 * 86_400_000), "3 d");
        assert_eq!(age(0, 5), "0 s");
    }
}
