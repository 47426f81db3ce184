//! Ingest that a retry cannot double: `eventId` is unique per application.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test]
async fn a_reused_event_id_is_a_conflict_within_its_application_only() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let other = server.create_app("Other merchant").await;
    let message =
        json!({"eventType": "payment.captured", "eventId": "evt-42", "payload": {"n": 1}});
    let first = server.send_message(&app, message.clone()).await;

    let (status, body) = server
        .post(&format!("/api/v1/app/{app}/msg"), message.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body,
        json!({"code": "conflict", "detail": "a message with this eventId already exists"})
    );
    // Another application may use the same eventId.
    server.send_message(&other, message).await;
    // The first message is still the one the eventId names, and it is the only one.
    let (_, by_event_id) = server.get(&format!("/api/v1/app/{app}/msg/evt-42")).await;
    assert_eq!(by_event_id["id"], first.as_str());
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    server.stop().await;
}
