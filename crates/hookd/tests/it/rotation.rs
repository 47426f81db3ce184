//! During a rotation's grace period every delivery carries both signatures.

use std::time::Duration;

use hookd_signing::Secret;
use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::Receiver;

#[tokio::test]
async fn deliveries_carry_old_and_new_signatures_during_the_grace_period() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let old = server.endpoint_secret(&app, &ep).await;

    let (status, rotated) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let new = server.endpoint_secret(&app, &ep).await;
    assert_eq!(rotated["key"], new.as_str());
    assert_ne!(old, new);

    server
        .send_message(
            &app,
            json!({ "eventType": "payment.captured", "payload": {"r": 1} }),
        )
        .await;
    let got = &receiver.wait_delivered(1, Duration::from_secs(5)).await[0];
    let id = got.header("webhook-id");
    let timestamp: i64 = got.header("webhook-timestamp").parse().expect("timestamp");
    let signatures: Vec<&str> = got.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    let verifies = |secret: &str, signature: &str| {
        Secret::parse(secret)
            .expect("secret")
            .verify(id, timestamp, &got.body, signature)
    };
    assert!(verifies(&new, signatures[0]), "the new secret signs first");
    assert!(verifies(&old, signatures[1]), "the old secret still signs");
    server.stop().await;
}

#[tokio::test]
async fn after_the_grace_period_only_the_new_secret_signs() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, _) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"),
            json!({ "key": chosen, "gracePeriodSeconds": 0 }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.endpoint_secret(&app, &ep).await, chosen);
    server
        .send_message(
            &app,
            json!({ "eventType": "payment.captured", "payload": {"r": 2} }),
        )
        .await;
    let got = &receiver.wait_delivered(1, Duration::from_secs(5)).await[0];
    assert_eq!(got.header("webhook-signature").split(' ').count(), 1);
    server.stop().await;
}
