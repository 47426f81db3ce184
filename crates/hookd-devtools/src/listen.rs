//! `hookd listen --forward-to URL`: relays an application's deliveries to a local URL.
//!
//! The CLI opens a listen session on the server (which adds an endpoint for it), long-polls
//! for deliveries, POSTs each to the local URL with its original headers and body, and reports
//! the local answer back, where it is recorded as the attempt.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::ApiClient;
use hookd::relay::{RelayReply, RelayRequest};

/// The most of a local answer reported back.
const ANSWER_CAP: usize = 4096;

/// Runs until `stop` completes, then closes the session.
pub async fn listen(
    client: &ApiClient,
    app: Option<&str>,
    forward_to: &str,
    event_types: Vec<String>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = client.resolve_app(app).await?;
    let body = json!({ "eventTypes": (!event_types.is_empty()).then_some(event_types) });
    let session = client
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/listen"),
            Some(body),
        )
        .await?;
    let session_id = session["sessionId"]
        .as_str()
        .context("no session id")?
        .to_string();
    println!("listening for {app}'s deliveries, forwarding to {forward_to} (Ctrl-C to stop)");
    let local = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("/api/v1/app/{app}/listen/{session_id}");
    tokio::select! {
        outcome = relay_loop(client, &local, &base, forward_to) => outcome?,
        () = stop => {}
    }
    client.call(Method::DELETE, &base, None).await?;
    println!("session closed");
    Ok(())
}

async fn relay_loop(
    client: &ApiClient,
    local: &reqwest::Client,
    base: &str,
    forward_to: &str,
) -> anyhow::Result<()> {
    loop {
        let next = client
            .call(Method::GET, &format!("{base}/next?wait=25"), None)
            .await?;
        if next.is_null() {
            continue; // Nothing within the wait: poll again.
        }
        let request: RelayRequest = serde_json::from_value(next)?;
        let reply = forward(local, forward_to, &request).await;
        let reply_path = format!("{base}/reply/{}", request.request_id);
        let reply_body = serde_json::to_value(&reply)?;
        if let Err(err) = client
            .call(Method::POST, &reply_path, Some(reply_body))
            .await
        {
            eprintln!("could not report the answer: {err}");
        }
    }
}

/// POSTs one delivery to the local URL and describes the answer (status 0 when none came).
async fn forward(local: &reqwest::Client, url: &str, request: &RelayRequest) -> RelayReply {
    let started = Instant::now();
    let mut post = local.post(url).body(request.body.clone());
    for (name, value) in &request.headers {
        post = post.header(name, value);
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
            .to_string()
    };
    let event = serde_json::from_str::<Value>(&request.body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_string))
        .unwrap_or_default();
    let reply = match post.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            RelayReply {
                status,
                body: text.chars().take(ANSWER_CAP).collect(),
            }
        }
        Err(err) => RelayReply {
            status: 0,
            body: format!("hookd listen could not reach {url}: {err}"),
        },
    };
    println!(
        "{} {event} -> {} ({} ms)",
        header("webhook-id"),
        reply.status,
        started.elapsed().as_millis()
    );
    reply
}
