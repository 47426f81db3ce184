//! The SSRF guard end to end, tenant isolation on every route, token revocation, the API rate
//! limit, and secrets kept out of logs and error bodies. All traffic stays on loopback.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn loopback_in_any_spelling_is_never_reached_without_an_allowance() {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let spellings = [
        format!("http://127.0.0.1:{port}/a"),
        format!("http://127.1:{port}/b"),
        format!("http://0x7f000001:{port}/c"),
        format!("http://0X7F.0.0.1:{port}/d"),
        format!("http://2130706433:{port}/e"),
        format!("http://0177.0.0.1:{port}/f"),
        format!("http://127.000.000.001:{port}/g"),
        format!("http://127.0.0.1.:{port}/h"),
        format!("http://[::ffff:127.0.0.1]:{port}/i"),
        format!("http://[::ffff:7f00:1]:{port}/j"),
        format!("http://localhost:{port}/k"),
        format!("http://LOCALHOST.:{port}/l"),
        format!("http://[::1]:{port}/m"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("hookd.db").display());

    // While the operator allows loopback, the endpoints can be registered…
    let allowed = TestServer::start_with(|s| {
        s.database_url = database.clone();
        s.allow_destinations = vec![
            "127.0.0.0/8".parse().expect("v4"),
            "::1/128".parse().expect("v6"),
        ];
    })
    .await;
    let app = allowed.create_app("Merchant").await;
    for url in &spellings {
        allowed.create_endpoint(&app, url, json!({})).await;
    }
    allowed.stop().await;

    // …and once the allowance is gone, no delivery reaches them, whatever the spelling.
    let guarded = TestServer::start_with(|s| {
        s.database_url = database.clone();
        s.allow_destinations = Vec::new();
        s.retry.schedule = Vec::new();
    })
    .await;
    let msg = guarded
        .send_message(
            &app,
            json!({"eventType": "payment.created", "payload": {"x": 1}}),
        )
        .await;
    let attempts = guarded
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(10),
            |b| {
                b["data"]
                    .as_array()
                    .is_some_and(|d| d.len() == spellings.len())
            },
        )
        .await;
    for attempt in attempts["data"].as_array().expect("data") {
        assert_eq!(attempt["responseStatusCode"], 0, "{attempt}");
        let response = attempt["response"].as_str().expect("response");
        assert!(response.starts_with("blocked: "), "{attempt}");
    }
    assert!(receiver.received().is_empty(), "the receiver was reached");
    guarded.stop().await;
}

#[tokio::test]
async fn literal_internal_addresses_are_refused_at_creation() {
    let server = TestServer::start_with(|s| s.allow_destinations = Vec::new()).await;
    let app = server.create_app("Merchant").await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://0x7f000001/",
        "http://[::ffff:192.168.0.1]/",
        "http://100.64.0.1/",
    ] {
        let (status, body) = server
            .post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "url"]));
    }
    server.stop().await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start_with(|s| s.retry.schedule = Vec::new()).await;
    let receiver = Receiver::scripted(|_, path| {
        if path == "/start" {
            Reply::Status(307)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/start")).await;
    let msg = server
        .send_message(&app, json!({"eventType": "payment.created", "payload": {}}))
        .await;
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    assert_eq!(attempts["data"][0]["responseStatusCode"], 307);
    assert_eq!(attempts["data"][0]["status"], 2);
    let paths: Vec<_> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/start"]);
    server.stop().await;
}

/// Everything of tenant B, read as the org, to compare before and after.
async fn snapshot(server: &TestServer, app: &str, ep: &str, msg: &str) -> Vec<Value> {
    let mut state = Vec::new();
    for path in [
        format!("/api/v1/app/{app}"),
        format!("/api/v1/app/{app}/endpoint"),
        format!("/api/v1/app/{app}/endpoint/{ep}/secret"),
        format!("/api/v1/app/{app}/endpoint/{ep}/headers"),
        format!("/api/v1/app/{app}/msg"),
        format!("/api/v1/app/{app}/msg/{msg}/endpoint"),
        format!("/api/v1/app/{app}/attempt/msg/{msg}"),
    ] {
        state.push(server.get(&path).await.1);
    }
    state
}

#[tokio::test]
async fn an_application_token_cannot_touch_another_tenant() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let a = server.create_app("Tenant A").await;
    let (b, b_ep) = server.merchant_with_endpoint(&receiver.url("/b")).await;
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{b}"),
            Some(json!({"uid": "tenant-b"})),
        )
        .await;
    assert_eq!(status, 200);
    let b_msg = server
        .send_message(
            &b,
            json!({"eventType": "payment.created", "payload": {"b": 1}, "eventId": "evt-b"}),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    let b_attempt = server
        .wait_for(
            &format!("/api/v1/app/{b}/attempt/msg/{b_msg}"),
            Duration::from_secs(5),
            |v| v["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await["data"][0]["id"]
        .as_str()
        .expect("attempt id")
        .to_string();
    // A background task of tenant B (a recovery with nothing to recover).
    let (status, b_task) = server
        .post(
            &format!("/api/v1/app/{b}/endpoint/{b_ep}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b_task}");
    let b_task = b_task["id"].as_str().expect("task id").to_string();
    let before = snapshot(&server, &b, &b_ep, &b_msg).await;

    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{a}"), json!({}))
        .await;
    let token = access["token"].as_str().expect("token").to_string();

    let endpoint_body = json!({"url": "https://merchant.example/x"});
    let mut tried = 0;
    for app_key in [b.as_str(), "tenant-b"] {
        let ep = b_ep.as_str();
        let msg = b_msg.as_str();
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/api/v1/app/{app_key}"), None),
            (
                Method::PUT,
                format!("/api/v1/app/{app_key}"),
                Some(json!({"name": "x"})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/app/{app_key}"),
                Some(json!({"name": "x"})),
            ),
            (Method::DELETE, format!("/api/v1/app/{app_key}"), None),
            (Method::GET, format!("/api/v1/app/{app_key}/endpoint"), None),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/endpoint"),
                Some(endpoint_body.clone()),
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/endpoint/{ep}"),
                None,
            ),
            (
                Method::PUT,
                format!("/api/v1/app/{app_key}/endpoint/{ep}"),
                Some(endpoint_body.clone()),
            ),
            (
                Method::PATCH,
                format!("/api/v1/app/{app_key}/endpoint/{ep}"),
                Some(json!({"disabled": true})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/app/{app_key}/endpoint/{ep}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/secret"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/secret/rotate"),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/headers"),
                None,
            ),
            (
                Method::PUT,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/headers"),
                Some(json!({"headers": {"x-a": "b"}})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/headers"),
                Some(json!({"headers": {"x-a": "b"}})),
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/stats"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/msg"),
                None,
            ),
            (Method::GET, format!("/api/v1/app/{app_key}/msg"), None),
            (Method::GET, format!("/api/v1/app/{app_key}/feed"), None),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/msg"),
                Some(json!({"eventType": "a.b", "payload": {}})),
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/msg/{msg}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/msg/evt-b"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/msg/{msg}/endpoint"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/msg/{msg}/attempt/{b_attempt}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/attempt/msg/{msg}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/attempt/endpoint/{ep}"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/msg/{msg}/endpoint/{ep}/resend"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/api/v1/auth/app-portal-access/{app_key}"),
                Some(json!({})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/app/{app_key}/msg/{msg}/content"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/recover"),
                Some(json!({"since": "2020-01-01T00:00:00Z"})),
            ),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/endpoint/{ep}/send-example"),
                Some(json!({"eventType": "payment.created"})),
            ),
        ];
        for (method, path, body) in routes {
            let (status, answer) = server.call_as(&token, method.clone(), &path, body).await;
            assert!(
                status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                "{method} {path} answered {status}: {answer}"
            );
            tried += 1;
        }
    }
    // Tenant A's own ids with B's sub-resources are not found either.
    for path in [
        format!("/api/v1/app/{a}/endpoint/{b_ep}"),
        format!("/api/v1/app/{a}/msg/{b_msg}"),
        format!("/api/v1/app/{a}/attempt/msg/{b_msg}"),
        format!("/api/v1/app/{a}/msg/{b_msg}/attempt/{b_attempt}"),
        format!("/api/v1/app/{a}/endpoint/{b_ep}/secret"),
    ] {
        let (status, _) = server.call_as(&token, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        tried += 1;
    }
    let (status, _) = server
        .call_as(
            &token,
            Method::POST,
            &format!("/api/v1/app/{a}/msg/{b_msg}/endpoint/{b_ep}/resend"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call_as(
            &token,
            Method::POST,
            &format!("/api/v1/app/{a}/endpoint/{b_ep}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call_as(
            &token,
            Method::POST,
            &format!("/api/v1/app/{a}/endpoint/{b_ep}/send-example"),
            Some(json!({"eventType": "payment.created"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another tenant's background task does not exist for this token; the org sees it.
    let task_path = format!("/api/v1/background-task/{b_task}");
    let (status, _) = server.call_as(&token, Method::GET, &task_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.get(&task_path).await.0, StatusCode::OK);
    assert!(tried > 60);

    assert_eq!(
        snapshot(&server, &b, &b_ep, &b_msg).await,
        before,
        "tenant B changed"
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing was resent to tenant B"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let token = access["token"].as_str().expect("token").to_string();
    let path = format!("/api/v1/app/{app}/msg");
    assert_eq!(
        server.call_as(&token, Method::GET, &path, None).await.0,
        200
    );
    let (status, _) = server
        .call_as(&token, Method::POST, "/api/v1/auth/logout", Some(json!({})))
        .await;
    assert_eq!(status, 204);
    let (status, body) = server.call_as(&token, Method::GET, &path, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "authentication_failed");
    server.stop().await;
}

#[tokio::test]
async fn the_api_rate_limit_answers_429_with_retry_after() {
    let server = TestServer::start_with(|s| s.api_rate_limit = 5).await;
    let mut limited = None;
    for _ in 0..20 {
        let response = server
            .client
            .get(format!("{}/api/v1/app", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("send");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("20 requests at once exceed 5 per second");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited");
    // Another token has its own budget.
    let app = {
        let server_token = server.token.clone();
        let _ = server_token;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        server.create_app("Merchant").await
    };
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let token = access["token"].as_str().expect("token").to_string();
    let (status, _) = server
        .call_as(&token, Method::GET, &format!("/api/v1/app/{app}"), None)
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}
