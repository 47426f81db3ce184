//! `hookd listen --forward-to URL`: relays an application's deliveries to a local URL.
//!
//! The CLI opens a listen session on the server (which adds an endpoint for it), long-polls
//! for deliveries, POSTs each to the local URL with its original headers and body, and reports
//! the local answer back, where it is recorded as the attempt.
//!
//! The session lives on the node the CLI reached, and only that node delivers to it. When that
//! node goes away (it stopped, or a load balancer now sends the CLI to another one), the CLI
//! re-opens the same session on whichever node answers, retrying with backoff; that node takes
//! the session over, and the deliveries that waited meanwhile come through it.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::{ApiClient, Refused};
use hookd::relay::{RelayReply, RelayRequest};

/// The most of a local answer reported back.
const ANSWER_CAP: usize = 4096;
/// The longest wait between two attempts to re-open a lost session.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// An open session, as the server named it.
struct Session {
    app: String,
    id: String,
    endpoint_id: String,
}

impl Session {
    fn base(&self) -> String {
        format!("/api/v1/app/{}/listen/{}", self.app, self.id)
    }
}

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
    let opened = client
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/listen"),
            Some(body),
        )
        .await?;
    let field = |name: &str| {
        opened[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no {name} in the server's answer"))
    };
    let session = Session {
        id: field("sessionId")?,
        endpoint_id: field("endpointId")?,
        app,
    };
    println!(
        "listening for {}'s deliveries, forwarding to {forward_to} (Ctrl-C to stop)",
        session.app
    );
    let local = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    tokio::select! {
        outcome = relay(client, &local, &session, forward_to) => outcome?,
        () = stop => {}
    }
    client.call(Method::DELETE, &session.base(), None).await?;
    println!("session closed");
    Ok(())
}

/// Relays deliveries, re-opening the session whenever polling for them fails; returns only when
/// the session cannot be re-opened.
async fn relay(
    client: &ApiClient,
    local: &reqwest::Client,
    session: &Session,
    forward_to: &str,
) -> anyhow::Result<()> {
    loop {
        let lost = relay_loop(client, local, &session.base(), forward_to).await;
        eprintln!("lost the listen session ({lost:#}); re-opening it");
        reopen(client, session).await?;
        eprintln!("listen session {} re-opened", session.id);
    }
}

/// Re-opens the session on whichever node the server's address reaches now, until one takes
/// it. A refusal that will not change (the session's endpoint was deleted, the token is not
/// valid) ends the CLI.
async fn reopen(client: &ApiClient, session: &Session) -> anyhow::Result<()> {
    let path = format!("/api/v1/app/{}/listen", session.app);
    let body = json!({ "sessionId": session.id, "endpointId": session.endpoint_id });
    let mut delay = Duration::from_millis(200);
    loop {
        match client.call(Method::POST, &path, Some(body.clone())).await {
            Ok(_) => return Ok(()),
            Err(err) if is_final(&err) => {
                return Err(err.context("the listen session cannot be re-opened"))
            }
            Err(err) => {
                eprintln!("re-opening the listen session failed ({err:#}); again in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(REOPEN_BACKOFF_MAX);
            }
        }
    }
}

/// Whether a refusal is the server's last word: a client error other than those a node under
/// load or without a worker answers (another node, or a later try, may take the session).
fn is_final(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Refused>().is_some_and(|refused| {
        refused.status.is_client_error()
            && !matches!(
                refused.status,
                StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
            )
    })
}

/// Polls for deliveries and relays each; returns the first error of a poll.
async fn relay_loop(
    client: &ApiClient,
    local: &reqwest::Client,
    base: &str,
    forward_to: &str,
) -> anyhow::Error {
    loop {
        let next = match client
            .call(Method::GET, &format!("{base}/next?wait=25"), None)
            .await
        {
            Ok(next) => next,
            Err(err) => return err,
        };
        if next.is_null() {
            continue; // Nothing within the wait: poll again.
        }
        let request: RelayRequest = match serde_json::from_value(next) {
            Ok(request) => request,
            Err(err) => return err.into(),
        };
        let reply = forward(local, forward_to, &request).await;
        let reply_path = format!("{base}/reply/{}", request.request_id);
        let reply_body = match serde_json::to_value(&reply) {
            Ok(body) => body,
            Err(err) => return err.into(),
        };
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
