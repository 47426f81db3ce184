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
        "http://192.88.99.1/",
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
    // A `hookd listen` session of tenant B, and an event type of the shared catalog.
    let (status, b_listen) = server
        .post(&format!("/api/v1/app/{b}/listen"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b_listen}");
    let b_session = b_listen["sessionId"].as_str().expect("session").to_string();
    server.create_event_type("payment.created").await;
    let catalog_entry = "/api/v1/event-type/payment.created";
    let before = (
        snapshot(&server, &b, &b_ep, &b_msg).await,
        server.get(catalog_entry).await.1,
    );

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
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/listen"),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/api/v1/app/{app_key}/listen/{b_session}/next?wait=0"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/app/{app_key}/listen/{b_session}/reply/atmpt_x"),
                Some(json!({"status": 200, "body": ""})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/app/{app_key}/listen/{b_session}"),
                None,
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
    // The event type catalog is the platform's: an application token only reads it.
    let catalog_changes = [
        (
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "x.y", "description": "d"})),
        ),
        (
            Method::PUT,
            catalog_entry,
            Some(json!({"description": "changed"})),
        ),
        (
            Method::PATCH,
            catalog_entry,
            Some(json!({"description": "changed"})),
        ),
        (Method::DELETE, catalog_entry, None),
        (
            Method::DELETE,
            "/api/v1/event-type/payment.created?expunge=true",
            None,
        ),
    ];
    for (method, path, body) in catalog_changes {
        let (status, answer) = server.call_as(&token, method.clone(), path, body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} answered {status}: {answer}"
        );
        tried += 1;
    }
    // Tenant A's own application with B's listen session finds no session.
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/app/{a}/listen/{b_session}/next?wait=0"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/app/{a}/listen/{b_session}/reply/atmpt_x"),
            Some(json!({"status": 200, "body": ""})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/app/{a}/listen/{b_session}"),
            None,
        ),
    ] {
        let (status, answer) = server.call_as(&token, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        tried += 1;
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
    assert_eq!(tried, 83, "routes tried");

    let after = (
        snapshot(&server, &b, &b_ep, &b_msg).await,
        server.get(catalog_entry).await.1,
    );
    assert_eq!(after, before, "tenant B or the catalog changed");
    // B's listen session is still open: its own poll answers "nothing yet", not 404.
    let (status, _) = server
        .get(&format!("/api/v1/app/{b}/listen/{b_session}/next?wait=0"))
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "tenant B's listen session was closed"
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

/// Sends `count` requests with `token` at once; answers the responses.
async fn burst(
    server: &TestServer,
    token: &str,
    path: &str,
    count: usize,
) -> Vec<reqwest::Response> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let request = server
            .client
            .get(format!("{}{path}", server.base))
            .bearer_auth(token);
        requests.spawn(async move { request.send().await.expect("send") });
    }
    let mut responses = Vec::new();
    while let Some(response) = requests.join_next().await {
        responses.push(response.expect("request task"));
    }
    responses
}

#[tokio::test]
async fn the_api_rate_limit_answers_429_with_retry_after() {
    const PER_SECOND: usize = 5;
    let server = TestServer::start_with(|s| s.api_rate_limit = PER_SECOND as u32).await;
    // The second token is made first, while the org token still has budget.
    let app = server.create_app("Merchant").await;
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let app_token = access["token"].as_str().expect("token").to_string();

    // Sent at once, so that however slow the machine, they arrive faster than the budget
    // refills.
    let responses = burst(&server, &server.token, "/api/v1/app", 4 * PER_SECOND).await;
    let response = responses
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("20 requests at once exceed 5 per second");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited");

    // Another token has its own budget: right after the org token ran out, a whole burst of
    // the application token is admitted. Had the two shared one budget, only what refilled
    // since the 429 (one request per 200 ms) would be, so no refill is waited for.
    let path = format!("/api/v1/app/{app}");
    let admitted = burst(&server, &app_token, &path, PER_SECOND)
        .await
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(admitted, PER_SECOND);
    server.stop().await;
}
