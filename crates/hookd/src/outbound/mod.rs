//! The outbound HTTP client that calls webhook endpoints.
//!
//! It knows only HTTP: the delivery engine picks it for endpoints with an ordinary URL
//! ([`crate::delivery::transport`]). Every call goes through [`Outbound::post`]: no proxy, no redirects, connect and total
//! timeouts, and a response body read only up to [`RESPONSE_BODY_CAP`]. Destinations pass the
//! [`guard`]: IP literals are checked before the request and host names are resolved by
//! [`guard::GuardedResolver`], which hands the connector only the addresses that passed, so a
//! DNS answer that changes between check and connect gains nothing.

pub mod guard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use guard::{DestinationGuard, Verdict};

/// The most response body bytes read and kept per attempt.
pub const RESPONSE_BODY_CAP: usize = 4096;
/// The most characters of a redirect's `Location` kept in the recorded response.
const LOCATION_CAP: usize = 512;

/// Timeouts of the outbound client.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// An answer from an endpoint, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
    pub duration: Duration,
}

/// Why no answer was received.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (the endpoint does not speak TLS on that port, for one).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The endpoint answered with something that is not HTTP.
    #[error("invalid HTTP response: {0}")]
    InvalidResponse(String),
    /// The answer broke off while its body was read (a reset, a close before the end).
    #[error("reading the response failed: {0}")]
    Body(String),
    #[error("request failed: {0}")]
    Other(String),
}

/// The client every delivery attempt uses.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    guard: Arc<DestinationGuard>,
    config: OutboundConfig,
}

impl Outbound {
    pub fn new(config: OutboundConfig, guard: DestinationGuard) -> anyhow::Result<Self> {
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .dns_resolver(Arc::new(guard::GuardedResolver::new(Arc::clone(&guard))))
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            guard,
            config,
        })
    }

    /// The longest an endpoint is given to answer.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// POSTs `body` to `url` with `headers`, reading at most [`RESPONSE_BODY_CAP`] bytes back.
    pub async fn post(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Reply, (SendError, Duration)> {
        let started = Instant::now();
        let fail = |err: SendError| (err, started.elapsed());
        if let Verdict::Blocked(reason) = self.guard.check_url(&url) {
            return Err(fail(SendError::Blocked(reason)));
        }
        let response = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(self.classify(&e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(parse_retry_after);
        let redirect = response
            .status()
            .is_redirection()
            .then(|| redirect_note(response.headers().get(reqwest::header::LOCATION)));
        let body = read_capped(response)
            .await
            .map_err(|e| fail(self.classify(&e)))?;
        // A 3xx fails like any other non-2xx; the note says why a "found" is not a delivery.
        let body = match redirect {
            Some(note) if body.is_empty() => note,
            Some(note) => format!("{note}\n\n{body}"),
            None => body,
        };
        Ok(Reply {
            status,
            retry_after,
            body,
            duration: started.elapsed(),
        })
    }

    fn classify(&self, err: &reqwest::Error) -> SendError {
        if let Some(reason) = guard::blocked_cause(err) {
            return SendError::Blocked(reason);
        }
        if err.is_timeout() {
            return SendError::Timeout(self.config.request_timeout);
        }
        if err.is_connect() && err.url().is_some_and(|u| u.scheme() == "https") && is_tls(err) {
            return SendError::Tls(root_cause(err));
        }
        if err.is_connect() {
            return SendError::Connect(root_cause(err));
        }
        if is_parse(err) {
            return SendError::InvalidResponse(root_cause(err));
        }
        if err.is_body() || err.is_decode() {
            return SendError::Body(root_cause(err));
        }
        SendError::Other(root_cause(err))
    }
}

/// Builds a header map from name/value pairs, skipping any that are not valid HTTP.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    map
}

/// The body as text, cut at [`RESPONSE_BODY_CAP`] bytes with a note saying so. Reading stops
/// at the first byte over the cap: dropping the response then closes the connection, so a
/// huge or endless body costs one chunk, not its size.
async fn read_capped(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = RESPONSE_BODY_CAP - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            let text = String::from_utf8_lossy(&body);
            return Ok(format!(
                "{text}\n[response too large: cut at {RESPONSE_BODY_CAP} bytes]"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What is recorded for a redirect, which hookd never follows.
fn redirect_note(location: Option<&HeaderValue>) -> String {
    let location: String = location
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
        .unwrap_or_else(|| "nowhere (no Location header)".into())
        .chars()
        .take(LOCATION_CAP)
        .collect();
    format!("redirect to {location} not followed: hookd never follows redirects")
}

/// Whether a connect error came from the TLS handshake: rustls reports a failed handshake
/// (a plain-text answer, for one) as an I/O error of kind `InvalidData`, which TCP itself
/// never produces.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    any_cause(err, &|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
    })
}

/// Whether hyper could not parse the answer as HTTP.
fn is_parse(err: &(dyn std::error::Error + 'static)) -> bool {
    any_cause(err, &|cause| {
        cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
    })
}

/// Whether `test` holds for `err` or anything it wraps. An `io::Error`'s `source()` skips the
/// error it wraps (a rustls error sits inside two of them), so that one is looked into too.
fn any_cause(
    err: &(dyn std::error::Error + 'static),
    test: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    if test(err) {
        return true;
    }
    let wrapped = err
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    wrapped
        .into_iter()
        .chain(err.source())
        .any(|next| any_cause(next, test))
}

/// `Retry-After` in seconds (the HTTP-date form is rare for webhooks and is ignored).
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: Vec<u8>) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_cap_is_kept_whole_and_one_byte_more_is_cut_with_a_note() {
        let whole = read_capped(response(vec![b'a'; RESPONSE_BODY_CAP]))
            .await
            .expect("read");
        assert_eq!(whole, "a".repeat(RESPONSE_BODY_CAP));
        let cut = read_capped(response(vec![b'a'; RESPONSE_BODY_CAP + 1]))
            .await
            .expect("read");
        let note = format!("\n[response too large: cut at {RESPONSE_BODY_CAP} bytes]");
        assert_eq!(cut, "a".repeat(RESPONSE_BODY_CAP) + &note);
    }

    #[test]
    fn a_redirect_note_names_its_location_cut_to_a_bound() {
        let location = HeaderValue::from_static("https://example.com/elsewhere");
        assert_eq!(
            redirect_note(Some(&location)),
            "redirect to https://example.com/elsewhere not followed: hookd never follows redirects"
        );
        assert!(redirect_note(None).contains("no Location header"));
        let long = HeaderValue::from_str(&"x".repeat(10_000)).expect("value");
        assert!(redirect_note(Some(&long)).len() < LOCATION_CAP + 100);
    }
}
