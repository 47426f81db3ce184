//! Opt-in schema validation at ingest: an event type with `validatePayloads` refuses payloads
//! that break its newest schema with a 422 naming the place; without the flag nothing is checked.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestServer;

fn schemas() -> Value {
    json!({ "1": hookd::catalog::payment_schema("payment.captured") })
}

fn valid_payload() -> Value {
    hookd::catalog::example(hookd::catalog::entry("payment.captured").expect("entry"))
}

fn bad_amount() -> Value {
    let mut payload = valid_payload();
    payload["data"]["amount"] = json!("a lot");
    payload
}

async fn post(server: &TestServer, app: &str, payload: Value) -> (StatusCode, Value) {
    server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "payment.captured", "payload": payload}),
        )
        .await
}

#[tokio::test]
async fn payloads_are_checked_against_the_newest_schema_when_the_event_type_asks() {
    let server = TestServer::start().await;
    let (status, event_type) = server
        .post(
            "/api/v1/event-type",
            json!({
                "name": "payment.captured",
                "description": "captured",
                "schemas": schemas(),
                "validatePayloads": true
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event_type}");
    assert_eq!(event_type["validatePayloads"], true);
    let app = server.create_app("Merchant").await;

    let (status, body) = post(&server, &app, valid_payload()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = post(&server, &app, bad_amount()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "payload", "data", "amount"])
    );
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("integer")),
        "{body}"
    );
    let mut missing = valid_payload();
    missing["data"]
        .as_object_mut()
        .expect("data")
        .remove("currency");
    let (status, body) = post(&server, &app, missing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "payload", "data"]));

    // A refused message is not stored.
    let listed = server.get(&format!("/api/v1/app/{app}/msg")).await.1;
    assert_eq!(listed["data"].as_array().expect("data").len(), 1);

    // The newest version is the one that counts.
    let mut v2 = schemas();
    v2["2"] = json!({"type": "object", "required": ["v2"]});
    let (status, body) = server
        .call(
            Method::PATCH,
            "/api/v1/event-type/payment.captured",
            Some(json!({"schemas": v2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&server, &app, valid_payload()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "payload"]));
    server.stop().await;
}

#[tokio::test]
async fn without_the_flag_nothing_is_checked_and_changes_apply_at_once() {
    let server = TestServer::start().await;
    let (status, event_type) = server
        .post(
            "/api/v1/event-type",
            json!({"name": "payment.captured", "description": "captured", "schemas": schemas()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event_type}");
    assert_eq!(event_type["validatePayloads"], false);
    let app = server.create_app("Merchant").await;
    let (status, body) = post(&server, &app, bad_amount()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Event types outside the catalog are not checked either.
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "not.in.catalog", "payload": {"anything": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Turned on through this node's API: the next message is checked (no stale cache).
    let (status, body) = server
        .call(
            Method::PATCH,
            "/api/v1/event-type/payment.captured",
            Some(json!({"validatePayloads": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["validatePayloads"], true);
    assert_eq!(
        post(&server, &app, bad_amount()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // A PUT that does not mention the extension field (as a Svix SDK sends it) keeps it.
    let (status, body) = server
        .call(
            Method::PUT,
            "/api/v1/event-type/payment.captured",
            Some(json!({"description": "renamed", "schemas": schemas()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["validatePayloads"], true);
    assert_eq!(
        server.get("/api/v1/event-type/payment.captured").await.1["validatePayloads"],
        true
    );

    // Turned off again: accepted again.
    let (status, _) = server
        .call(
            Method::PUT,
            "/api/v1/event-type/payment.captured",
            Some(
                json!({"description": "renamed", "schemas": schemas(), "validatePayloads": false}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        post(&server, &app, bad_amount()).await.0,
        StatusCode::ACCEPTED
    );
    server.stop().await;
}

#[tokio::test]
async fn a_schema_that_does_not_compile_is_never_stored() {
    let server = TestServer::start().await;
    let broken = json!({"1": {"type": "no-such-type"}});
    // With validation on or off: a catalog entry whose schema is not one misleads its readers
    // (the portal shows it to merchants) as much as it would break ingest.
    for validate in [true, false] {
        let (status, body) = server
            .post(
                "/api/v1/event-type",
                json!({
                    "name": "payment.captured",
                    "description": "captured",
                    "schemas": broken,
                    "validatePayloads": validate
                }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", "schemas", "1", "type"])
        );
    }
    let (status, _) = server.get("/api/v1/event-type/payment.captured").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn the_seeded_payment_catalog_validates_payloads() {
    let server = TestServer::start_with(|s| s.seed = Some(hookd::config::Seed::Payments)).await;
    let event_type = server.get("/api/v1/event-type/payment.captured").await.1;
    assert_eq!(event_type["validatePayloads"], true);
    let app = server.create_app("Merchant").await;
    assert_eq!(
        post(&server, &app, valid_payload()).await.0,
        StatusCode::ACCEPTED
    );
    let (status, body) = post(&server, &app, bad_amount()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "payload", "data", "amount"])
    );
    server.stop().await;
}
