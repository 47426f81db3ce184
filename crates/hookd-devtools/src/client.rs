//! A small client of hookd's own API, for the command-line tools (`trigger`, `listen`, `demo`).

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};

/// A hookd server's answer other than 2xx, as [`ApiClient::call`]'s error (callers that care
/// which status it was downcast to it).
#[derive(Debug)]
pub struct Refused {
    pub status: reqwest::StatusCode,
    detail: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Refused {}

/// Calls a hookd server with a token.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// `base` is the server's root, e.g. `http://127.0.0.1:8071`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request and answers its JSON body (null for an empty one); any status other
    /// than 2xx is an error carrying hookd's `{code, detail}`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach hookd at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(anyhow::Error::new(Refused {
                status,
                detail: format!(
                    "{method} {path} answered {status}: {}",
                    value_or_text(&value, &text)
                ),
            }));
        }
        Ok(value)
    }

    pub async fn create_app(&self, name: &str, uid: Option<&str>) -> anyhow::Result<Value> {
        let body = json!({ "name": name, "uid": uid });
        self.call(Method::POST, "/api/v1/app?get_if_exists=true", Some(body))
            .await
    }

    pub async fn list_apps(&self) -> anyhow::Result<Vec<Value>> {
        let page = self
            .call(Method::GET, "/api/v1/app?limit=250", None)
            .await?;
        Ok(page["data"].as_array().cloned().unwrap_or_default())
    }

    pub async fn create_endpoint(&self, app: &str, body: Value) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(body),
        )
        .await
    }

    pub async fn send_message(
        &self,
        app: &str,
        event_type: &str,
        payload: Value,
    ) -> anyhow::Result<Value> {
        let body = json!({ "eventType": event_type, "payload": payload });
        self.call(Method::POST, &format!("/api/v1/app/{app}/msg"), Some(body))
            .await
    }

    /// The application to use: the one named, or the only one there is.
    pub async fn resolve_app(&self, app: Option<&str>) -> anyhow::Result<String> {
        if let Some(app) = app {
            return Ok(app.to_string());
        }
        let apps = self.list_apps().await?;
        match apps.as_slice() {
            [only] => Ok(only["id"].as_str().unwrap_or_default().to_string()),
            [] => bail!("hookd has no application yet; create one or pass --app"),
            _ => bail!(
                "hookd has {} applications; choose one with --app ({})",
                apps.len(),
                apps.iter()
                    .filter_map(|a| a["uid"].as_str().or(a["id"].as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn value_or_text(value: &Value, text: &str) -> String {
    if value.is_null() {
        text.to_string()
    } else {
        value.to_string()
    }
}
