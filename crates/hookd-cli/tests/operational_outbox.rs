//! Operational webhooks are committed with their cause: endpoints are created concurrently
//! through the real binary, the process is killed with SIGKILL right after the last 201, and
//! after a restart on the same database the operator's receiver gets an `endpoint.created`
//! for every endpoint, each exactly once (one message, whatever the redeliveries).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{post, serve};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const ENDPOINTS: usize = 200;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The operator's receiver: for each endpoint id of an `endpoint.created`, the `webhook-id`s
/// (messages) that announced it.
#[derive(Clone, Default)]
struct Operator {
    created: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl Operator {
    async fn start() -> (Self, String) {
        let me = Self::default();
        let recording = me.clone();
        let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
            let me = recording.clone();
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if event["type"] == "endpoint.created" {
                    let endpoint = event["data"]["endpointId"].as_str().unwrap_or_default();
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    me.created
                        .lock()
                        .expect("created")
                        .entry(endpoint.to_string())
                        .or_default()
                        .insert(id.to_string());
                }
                StatusCode::NO_CONTENT
            }
        };
        let app = axum::Router::new().route("/ops", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/ops", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (me, url)
    }

    fn created(&self) -> HashMap<String, HashSet<String>> {
        self.created.lock().expect("created").clone()
    }

    /// Waits up to `timeout` for an `endpoint.created` of every one of `wanted`.
    async fn wait_for(&self, wanted: &HashSet<String>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let created = self.created();
            if wanted.iter().all(|id| created.contains_key(id)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Creates `count` endpoints of `app` at once; answers their ids once every one got its 201.
async fn create_endpoints(base: &str, app: &str, count: usize) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut creating = JoinSet::new();
    for n in 0..count {
        let (client, url) = (client.clone(), format!("{base}/api/v1/app/{app}/endpoint"));
        creating.spawn(async move {
            let body = json!({ "url": format!("http://127.0.0.1:9/merchant/{n}") });
            let (status, _, endpoint) = post(&client, &url, &body).await;
            assert_eq!(status, StatusCode::CREATED, "{endpoint}");
            endpoint["id"].as_str().expect("id").to_string()
        });
    }
    let mut ids = HashSet::new();
    while let Some(id) = creating.join_next().await {
        ids.insert(id.expect("created"));
    }
    ids
}

#[tokio::test]
async fn a_sigkill_right_after_the_causes_commit_loses_no_operational_webhook() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("hookd.db");
    let (operator, url) = Operator::start().await;
    let env = [
        ("HOOKD_OPERATIONAL_WEBHOOK_URL", url.as_str()),
        ("HOOKD_OPERATIONAL_WEBHOOK_SECRET", SECRET),
    ];
    let (hookd, base) = serve(&db, &env).await;
    let client = reqwest::Client::new();
    let (status, _, app) = post(
        &client,
        &format!("{base}/api/v1/app"),
        &json!({"name": "Shop"}),
    )
    .await;
    assert!(status.is_success(), "{app}");
    let app = app["id"].as_str().expect("app").to_string();

    let endpoints = create_endpoints(&base, &app, ENDPOINTS).await;
    // SIGKILL (what dropping the child does), before anything after the 201s could run.
    drop(hookd);
    assert_eq!(endpoints.len(), ENDPOINTS);

    let (_hookd, _) = serve(&db, &env).await;
    operator.wait_for(&endpoints, Duration::from_secs(60)).await;
    // A little longer, so that a second message of any event would arrive too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let created = operator.created();
    let missing: Vec<&String> = endpoints
        .iter()
        .filter(|id| !created.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {ENDPOINTS} endpoint.created events were lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<_> = created.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "events published more than once: {twice:?}"
    );
    assert!(
        created.keys().all(|id| endpoints.contains(id)),
        "an endpoint.created for an endpoint that was not created"
    );
}
