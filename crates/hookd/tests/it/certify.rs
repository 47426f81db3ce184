//! "Check my endpoint" through the API: the server attacks an existing endpoint the way an
//! impostor would, signed with the endpoint's own key, through the deliveries' SSRF guard.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hookd_receiver::Verifier;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::harness::TestServer;
use crate::receiver::Receiver;

/// How a test receiver treats requests.
#[derive(Clone, Copy)]
enum Handling {
    /// Verifies signature and timestamp, as hookd-receiver does.
    Verifying,
    /// Answers 200 to anything, as naive tutorial code does.
    Naive,
}

/// A loopback receiver that keeps every request's headers.
pub struct Merchant {
    pub url: String,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
}

/// A receiver that verifies as hookd-receiver does, with `keys`.
pub async fn verifying_merchant(keys: Vec<String>) -> Merchant {
    merchant(Handling::Verifying, keys).await
}

async fn merchant(handling: Handling, keys: Vec<String>) -> Merchant {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = Arc::clone(&seen);
    let handler = move |headers: HeaderMap, body: Bytes| {
        let log = Arc::clone(&log);
        let keys = keys.clone();
        async move {
            log.lock().expect("log").push(headers.clone());
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            match handling {
                Handling::Naive => StatusCode::OK,
                Handling::Verifying => {
                    let verifier = Verifier::new(&keys).expect("keys");
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("clock")
                        .as_secs();
                    let verified = verifier.verify_parts(
                        &header("webhook-id"),
                        &header("webhook-timestamp"),
                        &header("webhook-signature"),
                        &body,
                        i64::try_from(now).expect("now"),
                    );
                    if verified.is_ok() {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::UNAUTHORIZED
                    }
                }
            }
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Merchant { url, seen }
}

fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            (name, c["verdict"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn failed(report: &Value) -> Vec<String> {
    verdicts(report)
        .into_iter()
        .filter(|(_, verdict)| verdict == "fail")
        .map(|(name, _)| name)
        .collect()
}

#[tokio::test]
async fn a_verifying_v1a_endpoint_passes_and_nothing_enters_its_history() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    // The receiver will be given the public key once the endpoint exists: start it on a
    // placeholder and point the endpoint at it after reading the key.
    let (status, created) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({ "url": "http://127.0.0.1:9/unused", "signatureScheme": "v1a",
                    "headers": { "x-merchant-auth": "shop-42" } }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ep = created["id"].as_str().expect("id").to_string();
    let public = server.endpoint_secret(&app, &ep).await;
    let receiver = merchant(Handling::Verifying, vec![public]).await;
    let (status, _) = server
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({ "url": receiver.url })),
        )
        .await;
    assert_eq!(status, 200);

    let path = format!("/api/v1/app/{app}/endpoint/{ep}/certify");
    let (status, report) = server.post(&path, json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["signatureScheme"], "v1a");
    assert!(failed(&report).is_empty(), "{report}");
    let checks = verdicts(&report);
    assert!(checks.len() >= 10, "{checks:?}");
    assert_eq!(
        checks.get("a tampered body with the original signature is refused"),
        Some(&"pass".to_string())
    );

    let seen = receiver.seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 9, "one request per check that sends one");
    for headers in &seen {
        assert_eq!(headers["hookd-certify"], "1");
        assert_eq!(
            headers["x-merchant-auth"], "shop-42",
            "the endpoint's own headers"
        );
        if let Some(id) = headers.get("webhook-id") {
            assert!(id.to_str().unwrap_or("").starts_with("cert_"), "{id:?}");
        }
    }
    // The endpoint's history is untouched; the report is kept.
    let (_, messages) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(
        messages["data"].as_array().map(Vec::len),
        Some(0),
        "{messages}"
    );
    let (_, attempts) = server
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}"))
        .await;
    assert_eq!(
        attempts["data"].as_array().map(Vec::len),
        Some(0),
        "{attempts}"
    );
    let (status, kept) = server.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(kept["data"].as_array().map(Vec::len), Some(1), "{kept}");
    assert_eq!(kept["data"][0], report);

    // At once again: refused without sending anything.
    let (status, again) = server.post(&path, json!({})).await;
    assert_eq!(status, 429, "{again}");
    assert_eq!(again["code"], "rate_limited");
    assert_eq!(receiver.seen.lock().expect("log").len(), 9);
    server.stop().await;
}

#[tokio::test]
async fn a_naive_endpoint_fails_the_signature_tamper_and_timestamp_checks() {
    let server = TestServer::start().await;
    let receiver = merchant(Handling::Naive, Vec::new()).await;
    let app = server.create_app("Merchant").await;
    let created = server.create_endpoint(&app, &receiver.url, json!({})).await;
    let ep = created["id"].as_str().expect("id");
    let (status, report) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/certify"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["signatureScheme"], "v1");
    let failed = failed(&report);
    for expected in [
        "a wrong signature is refused",
        "a signature made with another secret is refused",
        "a request without signature headers is refused",
        "a tampered body with the original signature is refused",
        "a timestamp 10 minutes old is refused",
        "a timestamp 10 minutes in the future is refused",
    ] {
        assert!(
            failed.iter().any(|f| f == expected),
            "{expected}: {failed:?}"
        );
    }
    assert_eq!(failed.len(), 6, "{failed:?}");
    server.stop().await;
}

#[tokio::test]
async fn checks_go_through_the_deliveries_ssrf_guard() {
    // The default guard: no loopback or private address. The endpoint names a host, which is
    // judged when resolved, so it can be created; the check must not reach it.
    let server = TestServer::start_with(|s| s.allow_destinations = Vec::new()).await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let created = server.create_endpoint(&app, &url, json!({})).await;
    let ep = created["id"].as_str().expect("id");
    let (status, report) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/certify"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], false);
    let answered = report["checks"][0]["answered"].as_str().unwrap_or("");
    assert!(answered.contains("block"), "{report}");
    assert!(
        receiver.received().is_empty(),
        "a blocked address was reached"
    );
    server.stop().await;
}

#[tokio::test]
async fn another_applications_endpoint_cannot_be_checked_or_read() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let other = server.create_app("Other merchant").await;
    let (status, access) = server
        .post(
            &format!("/api/v1/auth/app-portal-access/{other}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{access}");
    let token = access["token"].as_str().expect("token").to_string();
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/certify");
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let (status, _) = server.call_as(&token, method, &path, Some(json!({}))).await;
        assert!(status == 403 || status == 404, "{status}");
    }
    assert!(receiver.received().is_empty());
    server.stop().await;
}
