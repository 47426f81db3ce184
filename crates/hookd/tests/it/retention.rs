//! Nothing grows without bound: attempts and finished messages past retention are pruned, and
//! payloads past their own retention (or deleted through the API) are removed.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestDatabase, TestServer};
use crate::receiver::{Receiver, Reply};

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

/// Moves a message's payload expiry into the past, as if its retention period had gone by.
async fn expire_retention_of(db: &TestDatabase, msg_id: &str) {
    db.first_text(
        "UPDATE messages SET payload_expires_at = 1 WHERE id = ?1 RETURNING id",
        "UPDATE messages SET payload_expires_at = 1 WHERE id = $1 RETURNING id",
        msg_id,
    )
    .await
    .expect("the message exists");
}

/// The payload as stored, not as the API shows it.
async fn stored_payload(db: &TestDatabase, msg_id: &str) -> String {
    db.first_text(
        "SELECT payload FROM messages WHERE id = ?1",
        "SELECT payload FROM message_payloads WHERE msg_id = $1",
        msg_id,
    )
    .await
    .expect("the message exists")
}

/// A server whose failed deliveries wait an hour for their retry, so they stay pending.
async fn server_with_slow_retries() -> TestServer {
    TestServer::start_with(|s| {
        s.retry.schedule = vec![Duration::from_secs(3600)];
        s.prune_interval = Duration::from_millis(100);
    })
    .await
}

#[tokio::test]
async fn payloads_past_their_retention_are_removed_and_reported_expired() {
    let server = server_with_slow_retries().await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let short = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {"card": "4242"},
                   "payloadRetentionPeriod": 1}),
        )
        .await;
    let kept = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {"card": "5555"}}),
        )
        .await;
    // Both first attempts fail; both deliveries wait for their retry.
    let stats = format!("/api/v1/app/{app}/endpoint/{ep}/stats");
    server
        .wait_for(&stats, Duration::from_secs(10), |s| s["pending"] == 2)
        .await;
    assert_eq!(receiver.received().len(), 2);

    // A day later (the test moves the expiry instead of waiting), the pruner removes it.
    expire_retention_of(server.database(), &short).await;
    let expired = server
        .wait_for(
            &format!("/api/v1/app/{app}/msg/{short}"),
            Duration::from_secs(10),
            |m| m["payloadExpired"] == true,
        )
        .await;
    assert_eq!(expired["payload"], json!({}));
    assert_eq!(stored_payload(server.database(), &short).await, "{}");
    // Its waiting delivery stopped: nothing is left to send.
    let stats = server.get(&stats).await.1;
    assert_eq!(
        (stats["pending"].clone(), stats["canceled"].clone()),
        (json!(1), json!(1))
    );
    let (_, states) = server
        .get(&format!("/api/v1/app/{app}/msg/{short}/endpoint"))
        .await;
    assert_eq!(states["data"][0]["status"], 2);
    assert!(states["data"][0]["nextAttempt"].is_null());

    // The other message keeps its payload, and reads without the flag.
    let (_, intact) = server.get(&format!("/api/v1/app/{app}/msg/{kept}")).await;
    assert_eq!(intact["payload"], json!({"card": "5555"}));
    assert!(intact.get("payloadExpired").is_none(), "{intact}");
    assert_eq!(
        stored_payload(server.database(), &kept).await,
        r#"{"card":"5555"}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_payload_reads_as_empty_and_its_waiting_delivery_stops() {
    let server = server_with_slow_retries().await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "eventId": "evt-1",
                   "payload": {"card": "4242"}}),
        )
        .await;
    let stats = format!("/api/v1/app/{app}/endpoint/{ep}/stats");
    server
        .wait_for(&stats, Duration::from_secs(10), |s| s["pending"] == 1)
        .await;

    // By eventId, as any message route accepts.
    let content = format!("/api/v1/app/{app}/msg/evt-1/content");
    let (status, _) = server.call(Method::DELETE, &content, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, message) = server.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
    assert_eq!(message["payload"], json!({}));
    assert_eq!(message["payloadExpired"], true);
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"][0]["payloadExpired"], true);
    assert_eq!(stored_payload(server.database(), &msg).await, "{}");
    let stats = server.get(&stats).await.1;
    assert_eq!(stats["canceled"], 1, "{stats}");
    assert_eq!(stats["pending"], 0, "{stats}");
    // Nothing to resend either.
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Deleting again changes nothing; an unknown message is not found.
    let (status, _) = server.call(Method::DELETE, &content, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/msg/msg_nothere/content"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(receiver.received().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn payload_retention_is_checked() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let path = format!("/api/v1/app/{app}/msg");
    for (extra, field) in [
        (
            json!({"payloadRetentionPeriod": 0}),
            "payloadRetentionPeriod",
        ),
        (
            json!({"payloadRetentionPeriod": 91}),
            "payloadRetentionPeriod",
        ),
        (json!({"payloadRetentionHours": 0}), "payloadRetentionHours"),
        (
            json!({"payloadRetentionPeriod": 5, "payloadRetentionHours": 5}),
            "payloadRetentionHours",
        ),
    ] {
        let mut body = json!({"eventType": "payment.captured", "payload": {}});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let (status, answer) = server.post(&path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body", field]));
    }
    let (status, _) = server
        .post(
            &path,
            json!({"eventType": "payment.captured", "payload": {}, "payloadRetentionHours": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.stop().await;
}
