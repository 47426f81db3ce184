//! Tokens: org and application scope, and what each may reach.

use reqwest::Method;
use serde_json::json;

use crate::harness::{TestDatabase, TestServer};

#[tokio::test]
async fn an_application_token_reaches_only_its_application() {
    let server = TestServer::start().await;
    let mine = server.create_app("Mine").await;
    let theirs = server.create_app("Theirs").await;
    let (status, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{mine}"), json!({}))
        .await;
    assert_eq!(status, 200, "{access}");
    let token = access["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("hookd_app_"));

    let (status, _) = server
        .call_as(
            &token,
            Method::GET,
            &format!("/api/v1/app/{mine}/endpoint"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .call_as(
            &token,
            Method::GET,
            &format!("/api/v1/app/{theirs}/endpoint"),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "another tenant's application does not exist for this token"
    );
    assert_eq!(body["code"], "not_found");
    let (status, _) = server
        .call_as(&token, Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, 403, "listing applications is for org tokens");
    let (status, _) = server
        .call_as(
            &token,
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "x.y", "description": "d"})),
        )
        .await;
    assert_eq!(status, 403);
    server.stop().await;
}

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_refused() {
    let server = TestServer::start().await;
    let url = format!("{}/api/v1/app", server.base);
    let none = server.client.get(&url).send().await.expect("send");
    assert_eq!(none.status(), 401);
    let basic = server
        .client
        .get(&url)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("send");
    assert_eq!(basic.status(), 401);
    let (status, body) = server
        .call_as(
            "hookd_org_not-a-real-token",
            Method::GET,
            "/api/v1/app",
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "authentication_failed");
    server.stop().await;
}

#[tokio::test]
async fn a_first_start_without_tokens_creates_one_and_the_cli_makes_more() {
    let db = TestDatabase::create().await;
    let output = std::process::Command::new(crate::child::hookd_binary())
        .args(["token", "create", "--name", "ops"])
        .envs(db.env())
        .output()
        .expect("run hookd token create");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(
        token.starts_with("hookd_org_") && token.len() > 40,
        "{token}"
    );

    // A server on that database accepts the token (and, having one, prints no new token).
    let server = TestServer::start_on(db, |s| s.admin_token = None).await;
    let (status, _) = server
        .call_as(&token, Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}
