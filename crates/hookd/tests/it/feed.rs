//! The pull feed: an application token reads its application's messages in commit order from
//! a stored cursor, long-polls for new ones, and reaches no other application's feed.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{postgres_only, TestServer};

/// An application token for `app`.
async fn app_token(server: &TestServer, app: &str) -> String {
    let (status, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{access}");
    access["token"].as_str().expect("token").to_string()
}

/// One feed request as `token`; answers the page.
async fn feed(server: &TestServer, token: &str, app: &str, query: &str) -> Value {
    let (status, page) = server
        .call_as(
            token,
            Method::GET,
            &format!("/api/v1/app/{app}/feed?{query}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

fn message(n: usize) -> Value {
    json!({"eventType": "payment.captured", "payload": {"n": n}})
}

/// Posts `count` messages at once, as concurrent platform requests; answers their ids.
async fn post_concurrently(
    server: &TestServer,
    app: &str,
    first: usize,
    count: usize,
) -> Vec<String> {
    let mut posts = tokio::task::JoinSet::new();
    for n in first..first + count {
        let request = server
            .client
            .post(format!("{}/api/v1/app/{app}/msg", server.base))
            .bearer_auth(&server.token)
            .json(&message(n));
        posts.spawn(async move {
            let response = request.send().await.expect("post");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            let body: Value = response.json().await.expect("json");
            body["id"].as_str().expect("id").to_string()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = posts.join_next().await {
        ids.push(id.expect("post task"));
    }
    ids
}

/// Reads the feed from `cursor` seven at a time, long-polling while a page is empty, until
/// `count` messages came; answers their ids and the cursor to store. (On PostgreSQL a message
/// becomes readable once every write transaction older than its own has ended, anywhere on the
/// server, so a page may come empty for a moment even after the post was answered.)
async fn read_until(
    server: &TestServer,
    token: &str,
    app: &str,
    mut cursor: String,
    count: usize,
) -> (Vec<String>, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut read = Vec::new();
    while read.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} messages came: {read:?}",
            read.len()
        );
        let page = feed(
            server,
            token,
            app,
            &format!("after={cursor}&limit=7&wait=5"),
        )
        .await;
        read.extend(ids(&page));
        cursor = page["cursor"].as_str().expect("cursor").to_string();
    }
    (read, cursor)
}

#[tokio::test]
async fn a_consumer_back_from_an_outage_reads_every_message_once_in_commit_order() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let other = server.create_app("Other merchant").await;
    let token = app_token(&server, &app).await;

    // The consumer starts with an empty feed and keeps its cursor.
    let first = feed(&server, &token, &app, "").await;
    assert_eq!(first["data"], json!([]));
    assert_eq!(first["done"], true);
    let stored = first["cursor"].as_str().expect("cursor").to_string();

    // It is down while the platform posts: one by one, then many at once (they commit
    // together and out of id order), then one by one again; another merchant's messages
    // are interleaved.
    let mut before = Vec::new();
    for n in 0..5 {
        before.push(server.send_message(&app, message(n)).await);
        server.send_message(&other, message(n)).await;
    }
    let burst = post_concurrently(&server, &app, 5, 40).await;
    let mut after = Vec::new();
    for n in 45..50 {
        after.push(server.send_message(&app, message(n)).await);
    }

    // Back, it reads from its stored cursor, seven at a time.
    let (read, stored) = read_until(&server, &token, &app, stored, 50).await;
    assert_eq!(read.len(), 50, "every message once: {read:?}");
    let distinct: HashSet<&String> = read.iter().collect();
    assert_eq!(distinct.len(), 50, "no message twice");
    assert_eq!(
        read[..5],
        before[..],
        "sequential posts come in commit order"
    );
    let burst_read: HashSet<&String> = read[5..45].iter().collect();
    assert_eq!(
        burst_read,
        burst.iter().collect(),
        "the burst sits between them"
    );
    assert_eq!(read[45..], after[..]);

    // Payloads come with the messages.
    let page = feed(&server, &token, &app, "limit=1").await;
    assert_eq!(page["data"][0]["payload"], json!({"n": 0}));
    assert_eq!(page["data"][0]["eventType"], "payment.captured");
    assert_eq!(page["done"], false);

    // Nothing new: the stored cursor answers an empty page and stays where it was.
    let idle = feed(&server, &token, &app, &format!("after={stored}")).await;
    assert_eq!(idle["data"], json!([]));
    assert_eq!(idle["cursor"], stored.as_str());
    assert_eq!(idle["done"], true);

    // Later messages follow from the stored cursor, and only they.
    let mut later = post_concurrently(&server, &app, 50, 10).await;
    later.sort();
    let (mut read_later, _) = read_until(&server, &token, &app, stored, 10).await;
    read_later.sort();
    assert_eq!(read_later, later);
    server.stop().await;
}

#[tokio::test]
async fn a_long_poll_answers_with_the_message_that_arrives() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let token = app_token(&server, &app).await;
    let cursor = feed(&server, &token, &app, "").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();

    let poll = server
        .client
        .get(format!(
            "{}/api/v1/app/{app}/feed?after={cursor}&wait=30",
            server.base
        ))
        .bearer_auth(&token)
        .send();
    let poll = tokio::spawn(poll);
    // Give the request time to start waiting; the answer below does not depend on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = server.send_message(&app, message(1)).await;
    let page: Value = poll
        .await
        .expect("poll task")
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), std::slice::from_ref(&sent));
    assert_eq!(page["data"][0]["payload"], json!({"n": 1}));
    assert_ne!(page["cursor"], cursor.as_str());

    // With nothing to come, the wait ends empty, at the same cursor.
    let next = page["cursor"].as_str().expect("cursor").to_string();
    let empty = feed(&server, &token, &app, &format!("after={next}&wait=1")).await;
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["cursor"], next.as_str());
    assert_eq!(empty["done"], true);
    server.stop().await;
}

#[tokio::test]
async fn shutting_down_ends_a_long_poll_at_once() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let poll = server
        .client
        .get(format!("{}/api/v1/app/{app}/feed?wait=30", server.base))
        .bearer_auth(&server.token)
        .send();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops without waiting out the long-poll");
    let response = poll.await.expect("poll task").expect("poll");
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["data"], json!([]));
}

#[tokio::test]
async fn another_applications_token_cannot_read_the_feed() {
    let server = TestServer::start().await;
    let mine = server.create_app("Mine").await;
    let (status, theirs) = server
        .post("/api/v1/app", json!({"name": "Theirs", "uid": "theirs"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let theirs = theirs["id"].as_str().expect("id").to_string();
    server.send_message(&theirs, message(1)).await;
    let token = app_token(&server, &mine).await;

    for app in [theirs.as_str(), "theirs"] {
        let (status, body) = server
            .call_as(
                &token,
                Method::GET,
                &format!("/api/v1/app/{app}/feed?wait=1"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "not_found");
    }
    // Its own feed is there, and empty.
    assert_eq!(feed(&server, &token, &mine, "").await["data"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn bad_feed_parameters_are_422_naming_them() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    for (query, field) in [
        ("after=msg_123", "after"),
        ("after=1.x", "after"),
        ("limit=0", "limit"),
        ("limit=251", "limit"),
        ("wait=31", "wait"),
        ("wait=soon", "wait"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/app/{app}/feed?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }
    server.stop().await;
}

/// The hazard the feed's positions exist for: a transaction that started first commits last.
/// A reader must not pass the later commit's message until the earlier transaction has ended,
/// or a cursor stored in between would skip the earlier one.
#[tokio::test]
async fn postgres_holds_the_feed_back_behind_a_transaction_still_open() {
    if !postgres_only("postgres_holds_the_feed_back_behind_a_transaction_still_open") {
        return;
    }
    use sqlx::Connection;
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let mut slow = sqlx::PgConnection::connect(&server.database().url)
        .await
        .expect("connect");
    let mut tx = slow.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO messages (id, app_id, event_type, created_at)
         VALUES ('msg_slow', $1, 'payment.captured', 0)",
    )
    .bind(&app)
    .execute(&mut *tx)
    .await
    .expect("insert");
    sqlx::query("INSERT INTO message_payloads (msg_id, payload) VALUES ('msg_slow', '{}')")
        .execute(&mut *tx)
        .await
        .expect("insert payload");

    let fast = server.send_message(&app, message(1)).await;
    let page = server.get(&format!("/api/v1/app/{app}/feed")).await.1;
    assert_eq!(
        page["data"],
        json!([]),
        "the later commit waits for the open transaction"
    );

    tx.commit().await.expect("commit");
    let (read, _) = read_until(&server, &server.token, &app, String::new(), 2).await;
    assert_eq!(read, ["msg_slow".to_string(), fast]);
    server.stop().await;
}
