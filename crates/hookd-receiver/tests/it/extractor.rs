//! The axum extractor, driven through a real router: verified requests reach the handler with
//! their id, timestamp, raw body and parsed payload; others get 400 or 401 and a reason.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hookd_receiver::{Secret, Verifier, Webhook};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use tower::ServiceExt as _;

#[derive(Debug, Deserialize)]
struct Ping {
    n: u32,
}

async fn handler(webhook: Webhook<Ping>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "id": webhook.id,
        "timestamp": webhook.timestamp,
        "n": webhook.payload.n,
        "bodyLength": webhook.body.len(),
    }))
}

fn app(secret: &Secret) -> Router {
    let verifier = Verifier::from_secrets([secret.clone()]).expect("one secret");
    Router::new()
        .route("/webhooks", post(handler))
        .with_state(verifier)
}

fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// A request signed by `secret` at `timestamp`, with header names starting with `prefix`.
fn request(secret: &Secret, prefix: &str, timestamp: i64, body: &str) -> Request<Body> {
    Request::post("/webhooks")
        .header(format!("{prefix}-id"), "msg_1")
        .header(format!("{prefix}-timestamp"), timestamp.to_string())
        .header(
            format!("{prefix}-signature"),
            secret.sign("msg_1", timestamp, body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .expect("valid request")
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.oneshot(request).await.expect("router answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_verified_request_reaches_the_handler() {
    let secret = Secret::generate();
    let ts = now();
    for prefix in ["webhook", "svix"] {
        let (status, body) = send(app(&secret), request(&secret, prefix, ts, r#"{"n":7}"#)).await;
        assert_eq!(status, StatusCode::OK, "{prefix}: {body}");
        let got: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            got,
            serde_json::json!({"id": "msg_1", "timestamp": ts, "n": 7, "bodyLength": 7})
        );
    }
}

#[tokio::test]
async fn a_bad_signature_gets_401_with_a_reason() {
    let secret = Secret::generate();
    let forged = request(&Secret::generate(), "webhook", now(), r#"{"n":7}"#);
    assert_eq!(
        send(app(&secret), forged).await,
        (StatusCode::UNAUTHORIZED, "no signature matches".to_owned())
    );
}

#[tokio::test]
async fn a_stale_request_gets_401() {
    let secret = Secret::generate();
    let stale = request(&secret, "webhook", now() - 600, r#"{"n":7}"#);
    assert_eq!(
        send(app(&secret), stale).await,
        (
            StatusCode::UNAUTHORIZED,
            "the timestamp is too old".to_owned()
        )
    );
}

#[tokio::test]
async fn a_request_without_headers_gets_400() {
    let secret = Secret::generate();
    let bare = Request::post("/webhooks")
        .body(Body::from(r#"{"n":7}"#))
        .expect("valid request");
    assert_eq!(
        send(app(&secret), bare).await,
        (
            StatusCode::BAD_REQUEST,
            "missing header webhook-id".to_owned()
        )
    );
}

#[tokio::test]
async fn an_authentic_body_of_the_wrong_shape_gets_400() {
    let secret = Secret::generate();
    let (status, body) = send(
        app(&secret),
        request(&secret, "webhook", now(), r#"{"n":"seven"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("invalid payload: "), "{body}");
}
