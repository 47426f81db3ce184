//! Failed attempts are retried on the schedule; a delivery that never succeeds is exhausted.

use std::time::Duration;

use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn a_failing_receiver_gets_the_message_after_retries() {
    let server = TestServer::start().await;
    // Fails the first three requests with three different statuses, then accepts.
    let receiver = Receiver::scripted(|n, _| match n {
        0 => Reply::Status(500),
        1 => Reply::Status(503),
        2 => Reply::Status(302),
        _ => Reply::Status(200),
    })
    .await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let msg = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {"p": 1} }),
        )
        .await;

    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| d.len() == 4),
        )
        .await;
    // Newest first.
    let codes: Vec<i64> = attempts["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["responseStatusCode"].as_i64().expect("code"))
        .collect();
    assert_eq!(codes, [200, 302, 503, 500]);
    let statuses: Vec<i64> = attempts["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["status"].as_i64().expect("status"))
        .collect();
    assert_eq!(statuses, [0, 2, 2, 2]);
    let by_endpoint = server
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}"))
        .await
        .1;
    assert_eq!(by_endpoint["data"].as_array().expect("data").len(), 4);
    let failures_only = server
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}?status=2"))
        .await
        .1;
    assert_eq!(failures_only["data"].as_array().expect("data").len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_receiver_that_never_succeeds_ends_exhausted() {
    let server = TestServer::start().await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let msg = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {"p": 1} }),
        )
        .await;

    // One immediate attempt and three retries (the test schedule), then exhausted.
    let states = server
        .wait_for(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint"),
            Duration::from_secs(10),
            |b| b["data"][0]["status"] == 2,
        )
        .await;
    assert_eq!(states["data"][0]["statusText"], "fail");
    assert!(states["data"][0]["nextAttempt"].is_null());
    let attempts = server
        .get(&format!("/api/v1/app/{app}/attempt/msg/{msg}"))
        .await
        .1;
    assert_eq!(attempts["data"].as_array().expect("data").len(), 4);
    assert_eq!(receiver.received().len(), 4, "no attempt after exhaustion");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 4, "no attempt after exhaustion");

    let stats = server
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/stats"))
        .await
        .1;
    assert_eq!(stats["fail"], 1);

    // A manual resend tries again, now succeeding.
    receiver.set_script(|_, _| Reply::Status(204));
    let (status, _) = server
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| d.len() == 5),
        )
        .await;
    assert_eq!(attempts["data"][0]["triggerType"], 1);
    assert_eq!(attempts["data"][0]["status"], 0);
    server.stop().await;
}

#[tokio::test]
async fn retry_after_and_throttling_delay_the_next_attempt() {
    let server = TestServer::start_with(|s| {
        s.retry.throttled_min = Duration::from_millis(400);
    })
    .await;
    let receiver = Receiver::scripted(|n, _| {
        if n == 0 {
            Reply::Status(429)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let app = server.create_app("Merchant").await;
    server
        .create_endpoint(&app, &receiver.url("/"), json!({}))
        .await;
    let started = std::time::Instant::now();
    server
        .send_message(
            &app,
            json!({ "eventType": "payment.updated", "payload": {"p": 1} }),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    // The schedule says 20 ms, but a 429 waits at least the throttling floor.
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.stop().await;
}
