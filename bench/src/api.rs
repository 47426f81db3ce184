//! The few calls of hookd's Svix-compatible API that the bench needs.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use crate::hookd::Hookd;
use crate::payload;

/// Generous: a request slower than this is a failure, not a data point.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    /// Where setup calls go (the first node).
    base: String,
    /// Every node's API; message `seq` is published to node `seq % n`.
    publish_bases: Vec<String>,
    auth: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct SecretOut {
    key: String,
}

impl Api {
    /// `pool` is the number of keep-alive connections worth keeping idle,
    /// i.e. the number of concurrent publishers.
    pub fn new(hookd: &Hookd, pool: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            // Loopback only: never let an environment proxy see this traffic.
            .no_proxy()
            .pool_max_idle_per_host(pool.max(1))
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            base: format!("{}/api/v1", hookd.base_url()),
            publish_bases: hookd
                .base_urls()
                .iter()
                .map(|base| format!("{base}/api/v1"))
                .collect(),
            auth: format!("Bearer {}", hookd.token()),
        })
    }

    pub async fn create_app(&self) -> anyhow::Result<String> {
        self.create_app_with(json!({ "name": "bench" }))
            .await
            .context("creating the app")
    }

    /// Creates an application from its JSON (`name`, optionally `uid`); answers its id.
    pub async fn create_app_with(&self, body: serde_json::Value) -> anyhow::Result<String> {
        self.create("app", body).await
    }

    pub async fn create_endpoint(&self, app_id: &str, url: &str) -> anyhow::Result<String> {
        let body = json!({ "url": url, "description": "bench" });
        self.create(&format!("app/{app_id}/endpoint"), body)
            .await
            .with_context(|| format!("creating the endpoint for {url}"))
    }

    /// The endpoint's signing secret (`whsec_…`), as its owner reads it.
    pub async fn endpoint_secret(&self, app_id: &str, endpoint_id: &str) -> anyhow::Result<String> {
        let path = format!("app/{app_id}/endpoint/{endpoint_id}/secret");
        let resp = self
            .client
            .get(format!("{}/{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.bytes().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", snippet(&text));
        }
        let secret: SecretOut = serde_json::from_slice(&text)
            .with_context(|| format!("GET {path} answered no key: {}", snippet(&text)))?;
        Ok(secret.key)
    }

    /// Publishes message `seq`, stamping it with `sent_us` right before the POST.
    pub async fn publish(&self, app_id: &str, seq: u64, sent_us: u64) -> anyhow::Result<()> {
        let body = payload::message_body(seq, sent_us)?;
        let index = usize::try_from(seq).unwrap_or(0) % self.publish_bases.len();
        let resp = self
            .client
            .post(format!("{}/app/{app_id}/msg", self.publish_bases[index]))
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        // Read the body to the end so the connection goes back to the pool.
        let text = resp.bytes().await?;
        if !status.is_success() {
            bail!("publish answered {status}: {}", snippet(&text));
        }
        Ok(())
    }

    async fn create(&self, path: &str, body: serde_json::Value) -> anyhow::Result<String> {
        let resp = self
            .client
            .post(format!("{}/{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.bytes().await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {}", snippet(&text));
        }
        let created: Created = serde_json::from_slice(&text)
            .with_context(|| format!("POST {path} answered without an id: {}", snippet(&text)))?;
        Ok(created.id)
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}
