//! What the tests that run `hookd serve` as a child process share: a receiver that can be held
//! or switched, the process on a database file, and API calls with the admin token.
#![allow(dead_code)] // each test file uses its own part

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

pub const TOKEN: &str = "child-process-test-admin-token-0123456789abcdef";

/// A receiver whose answer the test sets: while `status` is 0 it holds every request; otherwise
/// it answers that status. It remembers the `webhook-id`s it answered with a 2xx.
#[derive(Clone)]
pub struct Receiver {
    pub status: Arc<AtomicU16>,
    pub answered: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    /// Starts answering `status` (0: holding) on 127.0.0.1; answers the receiver and its URL.
    pub async fn start(status: u16) -> (Self, String) {
        let me = Self {
            status: Arc::new(AtomicU16::new(status)),
            answered: Arc::default(),
        };
        let serving = me.clone();
        let handler = move |headers: HeaderMap| {
            let me = serving.clone();
            async move {
                let status = loop {
                    match me.status.load(Ordering::SeqCst) {
                        0 => tokio::time::sleep(Duration::from_millis(20)).await,
                        status => break status,
                    }
                };
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
                if status.is_success() {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    me.answered.lock().expect("answered").insert(id);
                }
                status
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (me, url)
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// How many of `wanted` it has not answered with a 2xx, once all have been or `timeout`
    /// has passed.
    pub async fn missing_after(&self, wanted: &HashSet<String>, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answered = self.answered.lock().expect("answered").clone();
            let missing = wanted.difference(&answered).count();
            if missing == 0 || tokio::time::Instant::now() > deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// `hookd ARGS` on the SQLite database `db`, with nothing of the caller's environment.
pub fn hookd(args: &[&str], db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookd"));
    command
        .args(args)
        .env_clear()
        .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HOOKD_ADMIN_TOKEN", TOKEN)
        .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("HOOKD_LOG", "warn");
    command
}

/// A `hookd serve` child process, killed when dropped (a failing test leaves none behind).
pub struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hookd serve` on `db` with the extra variables `env`; answers the process and its base URL
/// once it is healthy.
pub async fn serve(db: &Path, env: &[(&str, &str)]) -> (Served, String) {
    let port = free_port();
    let mut child = hookd(&["serve"], db)
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("start hookd");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let healthy = client.get(format!("{base}/api/v1/health")).send().await;
        if healthy.is_ok_and(|r| r.status().is_success()) {
            return (Served(child), base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hookd did not become healthy on {db:?}");
}

/// POSTs `body` with the admin token; answers the status and the JSON answer.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let headers = response.headers().clone();
    let answer = response.json().await.unwrap_or(Value::Null);
    (status, headers, answer)
}

/// An application with one endpoint at `url`; answers the application's id.
pub async fn merchant(client: &reqwest::Client, base: &str, url: &str) -> String {
    let (status, _, app) = post(
        client,
        &format!("{base}/api/v1/app"),
        &json!({"name": "Shop"}),
    )
    .await;
    assert!(status.is_success(), "{app}");
    let app = app["id"].as_str().expect("app").to_string();
    let (status, _, endpoint) = post(
        client,
        &format!("{base}/api/v1/app/{app}/endpoint"),
        &json!({ "url": url }),
    )
    .await;
    assert!(status.is_success(), "{endpoint}");
    app
}

/// Publishes `count` messages to `app` that must all be accepted; answers their ids.
pub async fn publish(client: &reqwest::Client, base: &str, app: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let body = json!({ "eventType": "payment.captured", "payload": { "n": n } });
        let (status, _, message) =
            post(client, &format!("{base}/api/v1/app/{app}/msg"), &body).await;
        assert!(status.is_success(), "{status} {message}");
        ids.push(message["id"].as_str().expect("id").to_string());
    }
    ids
}

/// Whether a flag is set in a test's environment.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub fn stopped(flag: &AtomicBool) -> bool {
    flag.load(Ordering::SeqCst)
}
