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
        let body = read_capped(response)
            .await
            .map_err(|e| fail(self.classify(&e)))?;
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
        if err.is_connect() {
            return SendError::Connect(root_cause(err));
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

async fn read_capped(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = RESPONSE_BODY_CAP - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == RESPONSE_BODY_CAP {
            break; // Dropping the response closes the connection; the rest is not wanted.
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
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
