//! The relay behind `hookd listen`: deliveries to a listen session's endpoint travel to the
//! developer's CLI over long-polled HTTP, and the CLI's answer from the local URL comes back
//! as the attempt's result.
//!
//! A session lives in the memory of the node the CLI talks to, so that node alone can deliver
//! to it. With several nodes on one PostgreSQL database, the session's endpoint is therefore
//! pinned to that node (`endpoints.listen_node`, written by `api/listen.rs` through
//! `Store::pin_listen_endpoint`): the claim on every other node passes over the endpoint, and
//! their ingest never leases its deliveries, so they all reach the holder, on their first
//! attempt. When the CLI loses its node (the node stopped, or a load balancer moved the CLI),
//! it re-opens the same session on the node it reaches now, which pins the endpoint to itself
//! and makes its waiting deliveries due at once.
//!
//! Why a pin rather than the alternatives: forwarding a delivery from the claiming node to the
//! holder would need nodes to reach each other, which they cannot (they share only the
//! database); a node giving back deliveries it cannot make would pass them around until the
//! holder happened to claim them, on every poll. The pin costs the claim one array lookup per
//! due row against a list read once per claim from a partial index of pinned endpoints.
//!
//! A pin holds only while its node heartbeats (`store::LISTEN_HOLDER_SILENT_MS`): a pin to a
//! node killed, or stopped and not replaced, is ignored, and then a delivery made while no
//! CLI is connected anywhere fails like an unreachable endpoint and is retried, as does one
//! whose CLI stopped answering. With SQLite there is one node, which holds every live session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The URL scheme of listen-session endpoints: `hookd-listen://<session id>`.
pub(crate) const SCHEME: &str = "hookd-listen";

/// Deliveries waiting for the CLI to fetch them, per session.
const QUEUE_DEPTH: usize = 256;

/// One delivery handed to the CLI.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayRequest {
    pub request_id: String,
    pub headers: Vec<(String, String)>,
    /// The payload, byte for byte as it would be POSTed.
    pub body: String,
}

/// The local URL's answer, as reported by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayReply {
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

struct Session {
    app_id: String,
    endpoint_id: String,
    queue: mpsc::Sender<RelayRequest>,
    inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<RelayRequest>>>,
    waiting: HashMap<String, oneshot::Sender<RelayReply>>,
}

/// Why a delivery could not be relayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("no `hookd listen` session {0} is connected to this node")]
    NoSession(String),
    #[error("the `hookd listen` session did not answer in time")]
    TimedOut,
}

/// All listen sessions of this node.
#[derive(Default)]
pub(crate) struct RelayHub {
    sessions: Mutex<HashMap<String, Session>>,
    /// Cancelled when the node begins to shut down: the CLIs' polls answer at once, rather
    /// than hold the shutdown up, and the CLIs go on to re-open their sessions elsewhere.
    stopping: tokio_util::sync::CancellationToken,
}

impl RelayHub {
    /// Answers every waiting poll now and every later one at once (see `stopping`).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Opens a session for an application's endpoint. A session this node already holds is
    /// kept as it is (a CLI re-opening it after a lost connection to this same node), so the
    /// deliveries waiting on it are not dropped.
    pub fn open(&self, session_id: &str, app_id: &str, endpoint_id: &str) {
        let mut sessions = self.lock();
        if sessions
            .get(session_id)
            .is_some_and(|s| s.app_id == app_id && s.endpoint_id == endpoint_id)
        {
            return;
        }
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        let session = Session {
            app_id: app_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            queue,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
            waiting: HashMap::new(),
        };
        sessions.insert(session_id.to_string(), session);
    }

    /// Closes a session and answers its endpoint's id; deliveries waiting on it fail.
    pub fn close(&self, session_id: &str) -> Option<String> {
        self.lock().remove(session_id).map(|s| s.endpoint_id)
    }

    /// Whether the session exists and belongs to the application.
    pub(crate) fn owned_by(&self, session_id: &str, app_id: &str) -> bool {
        self.lock()
            .get(session_id)
            .is_some_and(|s| s.app_id == app_id)
    }

    /// Delivery side: hands a request to the CLI and waits for its answer.
    pub async fn forward(
        &self,
        session_id: &str,
        headers: Vec<(String, String)>,
        body: String,
        timeout: Duration,
    ) -> Result<RelayReply, RelayError> {
        let request_id = crate::domain::new_id(crate::domain::IdPrefix::Attempt);
        let (reply_tx, reply_rx) = oneshot::channel();
        let queue = {
            let mut sessions = self.lock();
            let session = sessions
                .get_mut(session_id)
                .ok_or_else(|| RelayError::NoSession(session_id.to_string()))?;
            session.waiting.insert(request_id.clone(), reply_tx);
            session.queue.clone()
        };
        let request = RelayRequest {
            request_id: request_id.clone(),
            headers,
            body,
        };
        let outcome = tokio::time::timeout(timeout, async {
            queue
                .send(request)
                .await
                .map_err(|_| RelayError::NoSession(session_id.to_string()))?;
            reply_rx
                .await
                .map_err(|_| RelayError::NoSession(session_id.to_string()))
        })
        .await;
        if let Some(session) = self.lock().get_mut(session_id) {
            session.waiting.remove(&request_id);
        }
        outcome.map_err(|_| RelayError::TimedOut)?
    }

    /// CLI side: the next delivery, waiting up to `wait`.
    pub async fn next(&self, session_id: &str, wait: Duration) -> Option<RelayRequest> {
        let inbox = Arc::clone(&self.lock().get(session_id)?.inbox);
        let mut inbox = inbox.lock().await;
        tokio::select! {
            () = self.stopping.cancelled() => None,
            next = tokio::time::timeout(wait, inbox.recv()) => next.ok().flatten(),
        }
    }

    /// CLI side: the answer to one delivery. False when nobody waits for it any more.
    pub fn reply(&self, session_id: &str, request_id: &str, reply: RelayReply) -> bool {
        let waiter = self
            .lock()
            .get_mut(session_id)
            .and_then(|s| s.waiting.remove(request_id));
        waiter.is_some_and(|w| w.send(reply).is_ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned map still holds valid sessions; keep serving them.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The session id of a listen-session endpoint URL.
pub(crate) fn session_of(url: &str) -> Option<&str> {
    url.strip_prefix(SCHEME)?.strip_prefix("://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_travels_to_the_cli_and_its_answer_back() {
        let hub = Arc::new(RelayHub::default());
        hub.open("s1", "app_1", "ep_1");
        assert!(hub.owned_by("s1", "app_1"));
        assert!(!hub.owned_by("s1", "app_2"));
        let cli = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move {
                let request = hub
                    .next("s1", Duration::from_secs(5))
                    .await
                    .expect("request");
                assert_eq!(request.body, "{}");
                hub.reply(
                    "s1",
                    &request.request_id,
                    RelayReply {
                        status: 202,
                        body: "ok".into(),
                    },
                )
            })
        };
        let reply = hub
            .forward("s1", vec![], "{}".into(), Duration::from_secs(5))
            .await
            .expect("reply");
        assert_eq!(reply.status, 202);
        assert!(cli.await.expect("cli"));
    }

    #[tokio::test]
    async fn without_a_session_delivery_fails() {
        let hub = RelayHub::default();
        let err = hub
            .forward("nope", vec![], "{}".into(), Duration::from_millis(10))
            .await
            .expect_err("no session");
        assert!(matches!(err, RelayError::NoSession(_)));
        assert_eq!(session_of("hookd-listen://abc"), Some("abc"));
        assert_eq!(session_of("https://abc"), None);
    }
}
