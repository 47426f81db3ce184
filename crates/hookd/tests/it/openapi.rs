//! The served OpenAPI document describes every route, and the committed copy is current.

use serde_json::Value;

use crate::harness::TestServer;

/// Every route of the API, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/app"),
    ("post", "/api/v1/app"),
    ("get", "/api/v1/app/{app_id}"),
    ("put", "/api/v1/app/{app_id}"),
    ("patch", "/api/v1/app/{app_id}"),
    ("delete", "/api/v1/app/{app_id}"),
    ("get", "/api/v1/app/{app_id}/endpoint"),
    ("post", "/api/v1/app/{app_id}/endpoint"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("put", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("patch", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("delete", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"),
    (
        "post",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
    ),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    ("put", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    (
        "patch",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    ),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"),
    (
        "post",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    ),
    (
        "post",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
    ),
    ("get", "/api/v1/background-task/{task_id}"),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg"),
    ("get", "/api/v1/event-type"),
    ("post", "/api/v1/event-type"),
    ("get", "/api/v1/event-type/{event_type_name}"),
    ("put", "/api/v1/event-type/{event_type_name}"),
    ("patch", "/api/v1/event-type/{event_type_name}"),
    ("delete", "/api/v1/event-type/{event_type_name}"),
    ("get", "/api/v1/app/{app_id}/msg"),
    ("post", "/api/v1/app/{app_id}/msg"),
    ("get", "/api/v1/app/{app_id}/msg/{msg_id}"),
    ("get", "/api/v1/app/{app_id}/feed"),
    ("delete", "/api/v1/app/{app_id}/msg/{msg_id}/content"),
    ("get", "/api/v1/app/{app_id}/msg/{msg_id}/endpoint"),
    (
        "post",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    ),
    (
        "get",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
    ),
    (
        "post",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/certify",
    ),
    ("get", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/certify"),
    ("get", "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"),
    ("get", "/api/v1/app/{app_id}/attempt/msg/{msg_id}"),
    ("post", "/api/v1/auth/app-portal-access/{app_id}"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/health/ping"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn the_served_document_lists_every_route() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, operations) in paths {
        documented += operations.as_object().expect("operations").len();
        let _ = path;
    }
    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes this test does not know"
    );

    // Every documented route exists: none answers the "no such route" 404.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{app_id}", "app_x")
            .replace("{endpoint_id}", "ep_x")
            .replace("{msg_id}", "msg_x")
            .replace("{attempt_id}", "atmpt_x")
            .replace("{task_id}", "qtask_x")
            .replace("{event_type_name}", "x.y");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (status, body) = server.call(method.clone(), &concrete, None).await;
        assert!(
            !(status == 404 && body["detail"] == "route not found"),
            "{method} {path} is not routed"
        );
        assert_ne!(status, 405, "{method} {path}");
    }

    let page = server
        .client
        .get(format!("{}/api/v1/docs", server.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("/api/v1/openapi.json"));
    server.stop().await;
}

#[test]
fn the_committed_document_is_current() {
    let committed = include_str!("../../../../docs/openapi.json");
    assert!(
        committed.trim() == hookd::api::openapi::document_json().trim(),
        "docs/openapi.json is stale: run `cargo run -p hookd-cli -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn get_if_exists_answers_a_status_the_document_lists() {
    let server = TestServer::start().await;
    let body = serde_json::json!({ "name": "Acme", "uid": "acme" });
    let (created, _) = server
        .post("/api/v1/app?get_if_exists=true", body.clone())
        .await;
    let (again, _) = server.post("/api/v1/app?get_if_exists=true", body).await;
    let (_, doc) = server.get("/api/v1/openapi.json").await;
    let documented = &doc["paths"]["/api/v1/app"]["post"]["responses"];
    for status in [created, again] {
        assert!(
            documented[status.as_str()].is_object(),
            "POST /api/v1/app answered {status}, which its document does not list: {documented}"
        );
    }
}
