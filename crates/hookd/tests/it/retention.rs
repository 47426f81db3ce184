//! Nothing grows without bound: attempts and finished messages past retention are pruned.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::Receiver;

#[tokio::test]
async fn delivered_messages_and_their_attempts_are_pruned_after_retention() {
    let server = TestServer::start_with(|s| {
        s.retention = Duration::from_millis(400);
        s.prune_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {"n": 1}}),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    let attempts = format!("/api/v1/app/{app}/attempt/endpoint/{ep}");
    server
        .wait_for(&attempts, Duration::from_secs(10), |body| {
            body["data"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;

    // Past retention, the message, its delivery and its attempt are gone.
    server
        .wait_for(&attempts, Duration::from_secs(10), |body| {
            body["data"].as_array().is_some_and(|a| a.is_empty())
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = server.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still there: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The endpoint itself is configuration, not history: it stays.
    let (status, _) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}
