//! Where an attempt travels. An endpoint's URL is parsed once into a [`Target`], and the target
//! picks the transport: an ordinary URL goes through the guarded HTTP client
//! ([`crate::outbound`]); a listen session's URL (`hookd-listen://<session>`) goes to the
//! `hookd listen` CLI connected to this node ([`crate::relay`]) and never onto the network, so
//! the SSRF guard has nothing to judge there. Only the node holding a session claims its
//! deliveries (its endpoint is pinned to that node; see [`crate::relay`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;

use crate::outbound::{Outbound, Reply, SendError, RESPONSE_BODY_CAP};
use crate::relay::{self, RelayError, RelayHub};

/// An endpoint's destination, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An endpoint on the network, called over HTTP if the destination guard allows it.
    Http(reqwest::Url),
    /// A `hookd listen` session, by id.
    Relay(String),
}

impl Target {
    /// Parses an endpoint URL as stored. A listen session's URL is recognised first, because it
    /// would also parse as an ordinary (if useless) URL.
    pub fn parse(url: &str) -> Result<Self, url::ParseError> {
        if let Some(session) = relay::session_of(url) {
            return Ok(Self::Relay(session.to_string()));
        }
        reqwest::Url::parse(url).map(Self::Http)
    }
}

/// The transports an attempt can take, chosen per delivery by its [`Target`].
#[derive(Clone)]
pub struct Transports {
    http: Outbound,
    relay: Arc<RelayHub>,
}

impl Transports {
    pub fn new(http: Outbound, relay: Arc<RelayHub>) -> Self {
        Self { http, relay }
    }

    /// Sends one delivery to the endpoint at `url`, whichever way its target says.
    pub async fn send(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Reply, (SendError, Duration)> {
        let started = Instant::now();
        match Target::parse(url) {
            Ok(Target::Http(url)) => self.http.post(url, headers, body).await,
            Ok(Target::Relay(session)) => self.relay_to(&session, headers, body, started).await,
            Err(err) => Err((SendError::Other(err.to_string()), started.elapsed())),
        }
    }

    /// Hands a delivery to a `hookd listen` session and waits for the CLI's answer, as long
    /// as an HTTP endpoint would be given to answer.
    async fn relay_to(
        &self,
        session: &str,
        headers: HeaderMap,
        body: Bytes,
        started: Instant,
    ) -> Result<Reply, (SendError, Duration)> {
        let headers = headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let body = String::from_utf8_lossy(&body).into_owned();
        let timeout = self.http.request_timeout();
        match self.relay.forward(session, headers, body, timeout).await {
            Ok(reply) => Ok(Reply {
                status: reply.status,
                retry_after: None,
                body: reply.body.chars().take(RESPONSE_BODY_CAP).collect(),
                duration: started.elapsed(),
            }),
            Err(RelayError::TimedOut) => Err((SendError::Timeout(timeout), started.elapsed())),
            Err(err) => Err((SendError::Connect(err.to_string()), started.elapsed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_session_url_is_a_relay_target_and_anything_else_http() {
        assert_eq!(
            Target::parse("hookd-listen://lsn_1"),
            Ok(Target::Relay("lsn_1".into()))
        );
        assert!(matches!(
            Target::parse("https://example.com/hook"),
            Ok(Target::Http(url)) if url.as_str() == "https://example.com/hook"
        ));
        assert!(Target::parse("not a url").is_err());
    }
}
