//! `send-example`: an event type's example, sent as a real message to one endpoint only.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::Receiver;

#[tokio::test]
async fn an_example_goes_to_one_endpoint_as_a_real_message() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    for name in ["payment.captured", "payment.failed", "order.shipped"] {
        server.create_event_type(name).await;
    }
    let (status, body) = server
        .post(
            "/api/v1/event-type",
            json!({
                "name": "invoice.paid",
                "description": "An invoice was paid",
                "schemas": {"1": {"type": "object",
                                  "examples": [{"invoice": "inv_1"}, {"invoice": "inv_2"}]}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let app = server.create_app("Merchant").await;
    // The first endpoint subscribes to another event type: an example reaches it anyway.
    let one = server
        .create_endpoint(
            &app,
            &receiver.url("/one"),
            json!({"filterTypes": ["payment.failed"]}),
        )
        .await;
    let one = one["id"].as_str().expect("id").to_string();
    server
        .create_endpoint(&app, &receiver.url("/two"), json!({}))
        .await;

    let path = format!("/api/v1/app/{app}/endpoint/{one}/send-example");
    let server = &server;
    let send = |body: Value| {
        let path = path.clone();
        async move { server.post(&path, body).await }
    };
    // A built-in payment event: the catalog's example, stamped now.
    let (status, message) = send(json!({"eventType": "payment.captured"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    assert_eq!(message["eventType"], "payment.captured");
    assert_eq!(message["payload"]["event"], "payment.captured");
    assert_eq!(message["payload"]["data"]["status"], "captured");
    let delivered = receiver.wait_delivered(1, Duration::from_secs(10)).await;
    assert_eq!(delivered[0].path, "/one");
    assert_eq!(
        delivered[0].header("webhook-id"),
        message["id"].as_str().expect("id")
    );
    assert!(delivered[0].header("webhook-signature").starts_with("v1,"));
    let body: Value = serde_json::from_slice(&delivered[0].body).expect("json");
    assert_eq!(body, message["payload"]);
    // It is a message like any other, fanned out to that endpoint alone.
    let msg_id = message["id"].as_str().expect("id");
    let (status, _) = server.get(&format!("/api/v1/app/{app}/msg/{msg_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, destinations) = server
        .get(&format!("/api/v1/app/{app}/msg/{msg_id}/endpoint"))
        .await;
    let destinations = destinations["data"].as_array().expect("data");
    assert_eq!(destinations.len(), 1);
    assert_eq!(destinations[0]["id"], one.as_str());

    // An event type of the platform's own catalog: its schema's examples, else `{}`.
    let (_, message) = send(json!({"eventType": "invoice.paid"})).await;
    assert_eq!(message["payload"], json!({"invoice": "inv_1"}));
    let (_, message) = send(json!({"eventType": "invoice.paid", "exampleIndex": 1})).await;
    assert_eq!(message["payload"], json!({"invoice": "inv_2"}));
    let (status, body) = send(json!({"eventType": "invoice.paid", "exampleIndex": 2})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "exampleIndex"]));
    let (_, message) = send(json!({"eventType": "order.shipped"})).await;
    assert_eq!(message["payload"], json!({}));
    receiver.wait_delivered(4, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().iter().all(|r| r.path == "/one"));

    // An event type that exists nowhere is refused.
    let (status, body) = send(json!({"eventType": "nothing.here"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "eventType"]));
    // So is a disabled endpoint.
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{one}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(json!({"eventType": "payment.captured"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
}
