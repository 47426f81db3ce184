//! Endpoint health: an endpoint that only fails for the (shortened) period is disabled, a 410
//! disables at once, any success resets the clock, and re-enabling resumes deliveries.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

/// A failure period tests can wait out.
const PERIOD: Duration = Duration::from_millis(300);

/// Enough quick retries to keep one delivery failing for well over [`PERIOD`].
fn failing_for_long(settings: &mut hookd::config::Settings) {
    settings.disable_after = PERIOD;
    settings.retry.schedule = vec![Duration::from_millis(25); 40];
}

async fn endpoint(server: &TestServer, app: &str, ep: &str) -> Value {
    server
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}"))
        .await
        .1
}

async fn wait_disabled(server: &TestServer, app: &str, ep: &str) {
    server
        .wait_for(
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Duration::from_secs(10),
            |e| e["disabled"] == true,
        )
        .await;
}

async fn enable(server: &TestServer, app: &str, ep: &str) {
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({ "disabled": false })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], false);
}

fn message(n: u32) -> Value {
    json!({ "eventType": "payment.failed", "payload": { "n": n } })
}

#[tokio::test]
async fn an_endpoint_that_only_fails_is_disabled_after_the_period() {
    let server = TestServer::start_with(failing_for_long).await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let started = std::time::Instant::now();
    let msg = server.send_message(&app, message(1)).await;

    wait_disabled(&server, &app, &ep).await;
    assert!(
        started.elapsed() >= PERIOD,
        "disabled before the period ran out"
    );
    // Its pending delivery was canceled and nothing more is sent.
    let states = server
        .wait_for(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint"),
            Duration::from_secs(5),
            |b| b["data"][0]["nextAttempt"].is_null() && b["data"][0]["status"] != 3,
        )
        .await;
    assert_eq!(states["data"][0]["statusText"], "fail", "{states}");
    let stats = server
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/stats"))
        .await
        .1;
    assert_eq!(stats["canceled"], 1, "{stats}");
    let attempts = receiver.received().len();
    assert!(attempts >= 2, "only {attempts} attempts");
    server.send_message(&app, message(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        attempts,
        "a disabled endpoint got a request"
    );

    // Re-enabled, it receives new messages again, with the whole period ahead of it.
    receiver.set_script(|_, _| Reply::Status(204));
    enable(&server, &app, &ep).await;
    server.send_message(&app, message(3)).await;
    let delivered = receiver.wait_delivered(1, Duration::from_secs(5)).await;
    assert_eq!(&delivered[0].body[..], br#"{"n":3}"#);
    assert_eq!(endpoint(&server, &app, &ep).await["disabled"], false);
    server.stop().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_at_once_and_is_not_retried() {
    // The default period (5 days): only the 410 can disable it here.
    let server = TestServer::start().await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(410)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let msg = server.send_message(&app, message(1)).await;

    wait_disabled(&server, &app, &ep).await;
    let states = server
        .wait_for(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint"),
            Duration::from_secs(5),
            |b| b["data"][0]["status"] == 2,
        )
        .await;
    assert!(states["data"][0]["nextAttempt"].is_null(), "{states}");
    let attempts = server
        .get(&format!("/api/v1/app/{app}/attempt/msg/{msg}"))
        .await
        .1;
    assert_eq!(attempts["data"].as_array().expect("data").len(), 1);
    assert_eq!(attempts["data"][0]["responseStatusCode"], 410);

    // Nothing reaches it while disabled, and a resend is refused.
    server.send_message(&app, message(2)).await;
    let (status, _) = server
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1, "retried after a 410");

    receiver.set_script(|_, _| Reply::Status(204));
    enable(&server, &app, &ep).await;
    server.send_message(&app, message(3)).await;
    let delivered = receiver.wait_delivered(1, Duration::from_secs(5)).await;
    assert_eq!(&delivered[0].body[..], br#"{"n":3}"#);
    server.stop().await;
}

/// How long the failures seen by `receiver` span, from the first to the last.
fn failures_span(receiver: &Receiver) -> Duration {
    let failures: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.reply != Reply::Status(204))
        .map(|r| r.arrived)
        .collect();
    match (failures.iter().min(), failures.iter().max()) {
        (Some(first), Some(last)) => last.duration_since(*first),
        _ => Duration::ZERO,
    }
}

#[tokio::test]
async fn an_endpoint_failing_intermittently_is_never_disabled() {
    let server = TestServer::start_with(failing_for_long).await;
    // Two failures, then a success, over and over; and a success whenever a quarter of the
    // period passed since the last one. The second rule is what makes the verdict hold on a
    // busy machine: however late hookd's attempts come, the endpoint never goes a whole
    // period without a success, as this test means to show.
    let mut last_success = Instant::now();
    let receiver = Receiver::scripted(move |n, _| {
        if n % 3 == 2 || last_success.elapsed() >= PERIOD / 4 {
            last_success = Instant::now();
            Reply::Status(204)
        } else {
            Reply::Status(503)
        }
    })
    .await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    // Messages until the failures have gone on for several periods, by the receiver's clock
    // (a busy machine sends more of them, not fewer periods).
    let mut sent = 0;
    while sent < 30 || failures_span(&receiver) <= PERIOD * 3 {
        assert!(sent < 300, "the failures never spanned three periods");
        if sent % 10 == 0 {
            let disabled = endpoint(&server, &app, &ep).await["disabled"] == true;
            assert!(!disabled, "disabled after {sent} messages");
        }
        server.send_message(&app, message(sent)).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    receiver
        .wait_delivered(sent as usize, Duration::from_secs(60))
        .await;
    // The receiver answered before the results were recorded: wait for the last of them.
    let stats = server
        .wait_for(
            &format!("/api/v1/app/{app}/endpoint/{ep}/stats"),
            Duration::from_secs(30),
            |s| s["success"] == sent,
        )
        .await;
    assert_eq!(stats["canceled"], 0, "{stats}");
    assert_eq!(endpoint(&server, &app, &ep).await["disabled"], false);
    server.stop().await;
}

#[tokio::test]
async fn updates_never_undo_a_disable_they_did_not_ask_for() {
    let server = TestServer::start().await;
    let (app, ep) = server
        .merchant_with_endpoint("http://127.0.0.1:9/unused")
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}");
    let (status, _) = server
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(serde_json::json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, 200);
    // A PUT that does not say `disabled` keeps the endpoint as it is.
    let (status, put) = server
        .call(
            reqwest::Method::PUT,
            &path,
            Some(serde_json::json!({ "url": "http://127.0.0.1:9/moved" })),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["disabled"], true, "{put}");

    // If-Match names the version a change is made from: a stale one changes nothing.
    let client = reqwest::Client::new();
    let read = client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("get");
    let etag = read
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_string();
    let patch = |version: &str, description: &str| {
        client
            .patch(format!("{}{path}", server.base))
            .bearer_auth(&server.token)
            .header("if-match", version)
            .json(&serde_json::json!({ "description": description }))
            .send()
    };
    let first = patch(&etag, "first").await.expect("patch");
    assert_eq!(first.status(), 200);
    let again = patch(&etag, "second").await.expect("patch");
    assert_eq!(again.status(), 412);
    let body: serde_json::Value = again.json().await.expect("json");
    assert_eq!(body["code"], "precondition_failed");
    let bad = patch("not-a-version", "third").await.expect("patch");
    assert_eq!(bad.status(), 400);
    let (_, stored) = server.get(&path).await;
    assert_eq!(stored["description"], "first");
    assert_eq!(stored["disabled"], true);
    server.stop().await;
}
