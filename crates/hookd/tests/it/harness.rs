//! Runs the real hookd server on port 0 with a fresh SQLite file per test.

use std::time::Duration;

use hookd::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Settings every test starts from: loopback allowed, retries in milliseconds.
pub fn test_settings(database_url: String) -> Settings {
    let mut settings = Settings::with_database(database_url);
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.allow_destinations = vec!["127.0.0.0/8".parse().expect("cidr")];
    settings.retry.schedule = vec![Duration::from_millis(20); 3];
    settings.retry.throttled_min = Duration::from_millis(50);
    settings.poll_interval = Duration::from_millis(50);
    settings.request_timeout = Duration::from_secs(2);
    settings
}

/// A hookd server running inside the test process.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` has changed the test settings.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("hookd.db").display());
        let mut settings = test_settings(url);
        adjust(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookd::server::run(settings, listener, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            token: ADMIN_TOKEN.into(),
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The folder holding the server's database (and its key file).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Stops the server and waits for it to finish cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// Sends a request with the admin token; answers the status and the JSON body (or null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates an application and answers its id.
    pub async fn create_app(&self, name: &str) -> String {
        let (status, app) = self.post("/api/v1/app", json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app["id"].as_str().expect("app id").to_string()
    }

    pub async fn create_event_type(&self, name: &str) {
        let (status, body) = self
            .post(
                "/api/v1/event-type",
                json!({ "name": name, "description": format!("{name} events") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates an endpoint with extra fields merged into the body; answers the endpoint.
    pub async fn create_endpoint(&self, app_id: &str, url: &str, extra: Value) -> Value {
        let mut body = json!({ "url": url });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, endpoint) = self
            .post(&format!("/api/v1/app/{app_id}/endpoint"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        endpoint
    }

    /// An application with one endpoint at `url`; answers both ids.
    pub async fn merchant_with_endpoint(&self, url: &str) -> (String, String) {
        let app = self.create_app("Merchant").await;
        let endpoint = self.create_endpoint(&app, url, json!({})).await;
        let ep = endpoint["id"].as_str().expect("endpoint id").to_string();
        (app, ep)
    }

    pub async fn endpoint_secret(&self, app_id: &str, endpoint_id: &str) -> String {
        let (status, body) = self
            .get(&format!(
                "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["key"].as_str().expect("key").to_string()
    }

    /// Posts a message and answers its id.
    pub async fn send_message(&self, app_id: &str, body: Value) -> String {
        let (status, message) = self.post(&format!("/api/v1/app/{app_id}/msg"), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{message}");
        message["id"].as_str().expect("msg id").to_string()
    }

    /// Polls `path` until `done` holds for its JSON, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, body) = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} did not reach the expected state: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
