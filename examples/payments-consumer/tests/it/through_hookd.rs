//! The consumer fed by a real hookd process: proves that the receiver kit verifies hookd's
//! deliveries as they are sent, and that the app ends right when hookd delivers events in no
//! particular order and delivers one again.
//!
//! The hookd binary is taken from `HOOKD_BIN`, or else from beside this test's own target
//! directory (`target/debug/hookd`), which `cargo build --workspace` fills.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookd_receiver::Secret;
use serde_json::{json, Value};

use crate::{bind, event, Consumer};

const TOKEN: &str = "e2e-admin-token-0123456789";

/// A hookd child process on a free port with a fresh SQLite file; killed when dropped.
struct Hookd {
    child: Child,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

fn hookd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HOOKD_BIN") {
        return path.into();
    }
    // This test runs as target/<profile>/deps/it-<hash>; binaries sit in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("hookd")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Hookd {
    async fn start(extra_env: &[(&str, &str)]) -> Self {
        let binary = hookd_binary();
        assert!(
            binary.exists(),
            "{} not found: build hookd first (`cargo build -p hookd-cli`) or set HOOKD_BIN",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = std::fs::File::create(dir.path().join("hookd.log")).expect("log file");
        let port = free_port();
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .env_clear()
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "HOOKD_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("hookd.db").display()),
            )
            .env("HOOKD_ADMIN_TOKEN", TOKEN)
            .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("HOOKD_RETRY_SCHEDULE", "50ms,100ms,200ms")
            .env("HOOKD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start hookd");
        let mut hookd = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            dir,
        };
        hookd.wait_until_ready().await;
        hookd
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self
                .client
                .get(format!("{}/api/v1/health", self.base))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hookd exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "hookd not ready in 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hookd.log")).unwrap_or_default()
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("hookd answers");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(status.is_success(), "{status}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/api/v1{path}", self.base);
        self.call(self.client.post(url).json(&body)).await
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/api/v1{path}", self.base);
        self.call(self.client.get(url)).await
    }

    /// Creates an application and an endpoint at `url`; returns their ids.
    async fn merchant(&self, url: &str, secret: Option<&str>) -> (String, String) {
        let app = self.post("/app", json!({"name": "Acme Memberships"})).await;
        let app = app["id"].as_str().expect("app id").to_owned();
        let mut endpoint = json!({"url": url});
        if let Some(secret) = secret {
            endpoint["secret"] = json!(secret);
        }
        let endpoint = self.post(&format!("/app/{app}/endpoint"), endpoint).await;
        (
            app,
            endpoint["id"].as_str().expect("endpoint id").to_owned(),
        )
    }

    /// Posts one event to the application; returns the message id.
    async fn publish(&self, app: &str, body: &str) -> String {
        let payload: Value = serde_json::from_str(body).expect("JSON event");
        let message = self
            .post(
                &format!("/app/{app}/msg"),
                json!({"eventType": payload["event"], "payload": payload}),
            )
            .await;
        message["id"].as_str().expect("message id").to_owned()
    }

    /// The HTTP statuses of every attempt to deliver `msg`.
    async fn attempt_statuses(&self, app: &str, msg: &str) -> Vec<i64> {
        let attempts = self.get(&format!("/app/{app}/attempt/msg/{msg}")).await;
        attempts["data"]
            .as_array()
            .expect("attempt list")
            .iter()
            .map(|a| a["responseStatusCode"].as_i64().expect("status code"))
            .collect()
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 30 s, checking every 20 ms) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn inbox_has(consumer: &Consumer, n: i64) -> bool {
    consumer.count("webhook_inbox").await == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_deliveries_verify_and_end_in_the_gateway_state() {
    // The merchant's side: an address for hookd, and the secret read back from hookd.
    let bound = bind().await;
    let hookd = Hookd::start(&[]).await;
    let (app, endpoint) = hookd
        .merchant(&format!("{}/webhooks", bound.url), None)
        .await;
    let secret = hookd
        .get(&format!("/app/{app}/endpoint/{endpoint}/secret"))
        .await;
    let consumer = bound
        .serve(&[secret["key"].as_str().expect("whsec_ key")])
        .await;

    // The platform's side: events posted out of their order at the gateway, with stale
    // `payment.updated`s among them. hookd delivers them concurrently, in no set order.
    let events = [
        (
            "payment.captured",
            "pay_1",
            "captured",
            "2026-11-29T10:00:05Z",
        ),
        (
            "payment.created",
            "pay_1",
            "created",
            "2026-11-29T10:00:00Z",
        ),
        (
            "payment.authorized",
            "pay_1",
            "authorized",
            "2026-11-29T10:00:02Z",
        ),
        (
            "payment.updated",
            "pay_1",
            "authorized",
            "2026-11-29T10:00:03Z",
        ),
        (
            "payment.created",
            "pay_2",
            "created",
            "2026-11-29T10:01:00Z",
        ),
        ("payment.failed", "pay_2", "failed", "2026-11-29T10:01:10Z"),
        (
            "payment.captured",
            "pay_3",
            "captured",
            "2026-11-29T10:02:00Z",
        ),
        (
            "payment.refunded",
            "pay_3",
            "refunded",
            "2026-11-29T10:05:00Z",
        ),
        (
            "payment.updated",
            "pay_3",
            "captured",
            "2026-11-29T10:03:00Z",
        ),
    ];
    let mut messages = Vec::new();
    for (kind, payment, status, at) in events {
        let id = hookd.publish(&app, &event(kind, payment, status, at)).await;
        messages.push(id);
    }
    eventually("every delivery to be handled", || inbox_has(&consumer, 9)).await;

    assert_eq!(consumer.status("pay_1").await.as_deref(), Some("captured"));
    let pay_1 = consumer.payment("pay_1").await.expect("pay_1");
    assert_eq!(pay_1["membershipActive"], true);
    let pay_2 = consumer.payment("pay_2").await.expect("pay_2");
    assert_eq!(pay_2["status"], "failed");
    assert_eq!(pay_2["alerts"], 1);
    let pay_3 = consumer.payment("pay_3").await.expect("pay_3");
    assert_eq!(pay_3["status"], "refunded");
    assert_eq!(pay_3["membershipActive"], false);

    // A duplicate from hookd itself: the failure resent, same webhook-id. It is answered 204
    // and has no effect.
    let failed = &messages[5];
    hookd
        .post(
            &format!("/app/{app}/msg/{failed}/endpoint/{endpoint}/resend"),
            json!({}),
        )
        .await;
    eventually("the resend to be answered", || async {
        hookd.attempt_statuses(&app, failed).await == [204, 204]
    })
    .await;
    assert_eq!(consumer.count("alerts").await, 1);
    assert_eq!(consumer.count("webhook_inbox").await, 9);
    // Every attempt of every message was accepted at once: no forged or failed verification.
    for msg in &messages {
        let statuses = hookd.attempt_statuses(&app, msg).await;
        assert!(statuses.iter().all(|s| *s == 204), "{msg}: {statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svix_named_headers_from_hookd_verify_too() {
    let secret = Secret::generate();
    let bound = bind().await;
    let hookd = Hookd::start(&[("HOOKD_SIGNATURE_HEADERS", "svix")]).await;
    let (app, _) = hookd
        .merchant(&format!("{}/webhooks", bound.url), Some(&secret.expose()))
        .await;
    let consumer = bound.serve(&[&secret.expose()]).await;
    let captured = event(
        "payment.captured",
        "pay_9",
        "captured",
        "2026-11-29T10:00:00Z",
    );
    let msg = hookd.publish(&app, &captured).await;
    eventually("the delivery to be handled", || inbox_has(&consumer, 1)).await;
    assert_eq!(consumer.status("pay_9").await.as_deref(), Some("captured"));
    assert_eq!(hookd.attempt_statuses(&app, &msg).await, [204]);
}
