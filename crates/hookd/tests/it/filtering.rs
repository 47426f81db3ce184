//! Endpoints receive only the event types and channels they subscribed to.

use std::time::Duration;

use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::Receiver;

#[tokio::test]
async fn endpoints_receive_only_their_event_types_and_channels() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    for name in ["payment.created", "payment.failed"] {
        server.create_event_type(name).await;
    }
    let app = server.create_app("Merchant").await;
    // The current and the older Svix field names are both accepted.
    server
        .create_endpoint(
            &app,
            &receiver.url("/failed"),
            json!({ "filterTypes": ["payment.failed"] }),
        )
        .await;
    server
        .create_endpoint(
            &app,
            &receiver.url("/created"),
            json!({ "eventTypes": ["payment.created"] }),
        )
        .await;
    server
        .create_endpoint(&app, &receiver.url("/eu"), json!({ "channels": ["eu"] }))
        .await;
    server
        .create_endpoint(&app, &receiver.url("/all"), json!({}))
        .await;

    let created = server
        .send_message(
            &app,
            json!({ "eventType": "payment.created", "payload": {"k": 1} }),
        )
        .await;
    let failed_eu = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {"k": 2}, "channels": ["eu", "fr"] }),
        )
        .await;
    let failed_us = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {"k": 3}, "channels": ["us"] }),
        )
        .await;

    // /all: 3, /created: 1, /failed: 2, /eu: 1.
    let delivered = receiver.wait_delivered(7, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered_late = receiver.delivered();
    assert_eq!(
        delivered_late.len(),
        7,
        "nothing beyond the subscriptions arrives"
    );
    let ids_at = |path: &str| {
        let mut ids: Vec<String> = delivered
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids_at("/created"), vec![created.clone()]);
    assert_eq!(
        ids_at("/failed"),
        sorted(vec![failed_eu.clone(), failed_us.clone()])
    );
    assert_eq!(ids_at("/eu"), vec![failed_eu.clone()]);
    assert_eq!(ids_at("/all"), sorted(vec![created, failed_eu, failed_us]));
    server.stop().await;
}

#[tokio::test]
async fn a_disabled_endpoint_receives_nothing() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    server
        .create_endpoint(&app, &receiver.url("/off"), json!({ "disabled": true }))
        .await;
    server
        .create_endpoint(&app, &receiver.url("/on"), json!({}))
        .await;
    server
        .send_message(
            &app,
            json!({ "eventType": "payment.created", "payload": {"k": 1} }),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paths: Vec<_> = receiver.delivered().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/on"]);
    server.stop().await;
}

#[tokio::test]
async fn messages_list_filters_by_event_type_and_channel() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let a = server
        .send_message(
            &app,
            json!({ "eventType": "payment.created", "payload": {}, "channels": ["eu"] }),
        )
        .await;
    let b = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {} }),
        )
        .await;
    let by_type = server
        .get(&format!("/api/v1/app/{app}/msg?event_types=payment.failed"))
        .await
        .1;
    assert_eq!(by_type["data"][0]["id"], b.as_str());
    assert_eq!(by_type["data"].as_array().expect("data").len(), 1);
    let by_channel = server
        .get(&format!("/api/v1/app/{app}/msg?channel=eu"))
        .await
        .1;
    assert_eq!(by_channel["data"][0]["id"], a.as_str());
    assert_eq!(by_channel["data"].as_array().expect("data").len(), 1);
    server.stop().await;
}
