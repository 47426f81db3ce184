//! A message reaches its endpoint byte for byte, signed as Standard Webhooks says.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

/// An independent Standard Webhooks signer, so the test does not trust hookd's own.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key size");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

const KNOWN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn the_test_signer_matches_the_spec_known_answer() {
    assert_eq!(
        expected_signature(
            KNOWN_SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[tokio::test]
async fn a_message_arrives_exactly_and_signed() {
    let server = TestServer::start().await;
    // 200 rather than 204, so the answer has a body for the attempt to record.
    let receiver = Receiver::scripted(|_, _| Reply::Status(200)).await;
    let app = server.create_app("Merchant").await;
    let endpoint = server
        .create_endpoint(
            &app,
            &receiver.url("/webhooks"),
            json!({ "secret": KNOWN_SECRET }),
        )
        .await;
    let raw_payload = r#"{"test": 2432232314,   "data" : {"amount": 4999, "currency":"EUR"}}"#;
    let body = format!(r#"{{"eventType": "payment.captured", "payload": {raw_payload}}}"#);
    let response = server
        .client
        .post(format!("{}/api/v1/app/{app}/msg", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 202);
    let message: serde_json::Value = response.json().await.expect("json");
    let msg_id = message["id"].as_str().expect("id");

    let delivered = receiver.wait_delivered(1, Duration::from_secs(5)).await;
    let got = &delivered[0];
    assert_eq!(got.path, "/webhooks");
    assert_eq!(
        &got.body[..],
        raw_payload.as_bytes(),
        "the body is byte-exact"
    );
    assert_eq!(got.header("webhook-id"), msg_id);
    assert_eq!(got.header("content-type"), "application/json");
    assert!(got.header("user-agent").starts_with("hookd/"));
    let timestamp = got.header("webhook-timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    assert_eq!(
        got.header("webhook-signature"),
        expected_signature(KNOWN_SECRET, msg_id, timestamp, &got.body)
    );

    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg_id}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    let attempt = &attempts["data"][0];
    assert_eq!(attempt["responseStatusCode"], 200);
    assert_eq!(attempt["status"], 0);
    assert_eq!(attempt["endpointId"], endpoint["id"]);
    assert_eq!(attempt["response"], "receiver says hi");
    server.stop().await;
}

#[tokio::test]
async fn custom_headers_travel_and_svix_names_can_be_chosen() {
    let server = TestServer::start_with(|s| {
        s.signature_headers = hookd::config::SignatureHeaders::Both;
    })
    .await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/app/{app}/endpoint/{ep}/headers"),
            Some(json!({ "headers": { "x-merchant": "m-42" } })),
        )
        .await;
    assert_eq!(status, 204);
    server
        .send_message(
            &app,
            json!({ "eventType": "payment.created", "payload": {"a": 1} }),
        )
        .await;
    let got = &receiver.wait_delivered(1, Duration::from_secs(5)).await[0];
    assert_eq!(got.header("x-merchant"), "m-42");
    assert_eq!(got.header("svix-id"), got.header("webhook-id"));
    assert_eq!(
        got.header("svix-signature"),
        got.header("webhook-signature")
    );
    server.stop().await;
}

#[tokio::test]
async fn fan_out_reaches_every_endpoint_and_lists_their_states() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    for i in 0..3 {
        server
            .create_endpoint(&app, &receiver.url(&format!("/ep{i}")), json!({}))
            .await;
    }
    let msg = server
        .send_message(
            &app,
            json!({ "eventType": "payment.created", "payload": {"n": 1} }),
        )
        .await;
    let delivered = receiver.wait_delivered(3, Duration::from_secs(5)).await;
    let mut paths: Vec<_> = delivered.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/ep0", "/ep1", "/ep2"]);
    let states = server
        .wait_for(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint"),
            Duration::from_secs(5),
            |b| {
                b["data"]
                    .as_array()
                    .is_some_and(|d| d.len() == 3 && d.iter().all(|e| e["status"] == 0))
            },
        )
        .await;
    assert_eq!(states["done"], true);
    server.stop().await;
}
