//! PostgreSQL connections cut under load (`pg_terminate_backend` on every hookd connection,
//! again and again, while 3,000 messages are posted): the API answers 202 or 503 with
//! Retry-After, never a 500, and every message accepted is delivered. An exhausted pool is a
//! 503 too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::harness::{postgres_admin_url, postgres_only, TestServer};
use crate::receiver::Receiver;

const MESSAGES: usize = 3000;
const PUBLISHERS: usize = 16;

/// Terminates every connection hookd holds to `database`, every 100 ms until `stop`.
async fn cut_connections(database: String, stop: Arc<AtomicBool>, cut: Arc<AtomicUsize>) {
    let admin = sqlx::PgPool::connect(&postgres_admin_url())
        .await
        .expect("admin connection");
    while !stop.load(Ordering::SeqCst) {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'hookd'",
        )
        .bind(&database)
        .fetch_all(&admin)
        .await
        .unwrap_or_default();
        cut.fetch_add(ended.iter().filter(|ok| **ok).count(), Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin.close().await;
}

/// Posts message `n` until it is accepted (a 503 is retried with the same idempotency key, so
/// a retry never makes a second message); answers its id and how many 503s it met.
async fn publish(server: &TestServer, app: &str, n: usize) -> (String, usize) {
    let mut refused = 0;
    loop {
        let response = server
            .client
            .post(format!("{}/api/v1/app/{app}/msg", server.base))
            .bearer_auth(&server.token)
            .header("idempotency-key", format!("drop-{n}"))
            .json(&json!({ "eventType": "payment.captured", "payload": { "n": n } }))
            .send()
            .await
            .expect("hookd answers");
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        match status {
            202 => return (body["id"].as_str().expect("id").to_string(), refused),
            503 => {
                assert!(retry_after, "a 503 without Retry-After: {body}");
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The first try's key could not be freed yet (its connection was cut too): the
            // answer says to retry shortly, which is what a client does.
            409 if body["code"] == "idempotency_in_progress" => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("message {n} answered {other} while connections were cut: {body}"),
        }
    }
}

#[tokio::test]
async fn cut_connections_answer_503_and_lose_nothing() {
    if !postgres_only("cut_connections_answer_503_and_lose_nothing") {
        return;
    }
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/cut")).await;
    let database = server
        .database()
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let (stop, cut) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let cutter = tokio::spawn(cut_connections(database, stop.clone(), cut.clone()));

    let server = Arc::new(server);
    let next = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (server, app, next) = (server.clone(), app.clone(), next.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                let mut refused = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= MESSAGES {
                        return (accepted, refused);
                    }
                    let (id, met) = publish(&server, &app, n).await;
                    accepted.push(id);
                    refused += met;
                }
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for publisher in publishers {
        let (ids, met) = publisher.await.expect("publisher");
        accepted.extend(ids);
        refused += met;
    }
    stop.store(true, Ordering::SeqCst);
    cutter.await.expect("cutter");
    assert_eq!(accepted.len(), MESSAGES, "one message per idempotency key");
    assert!(cut.load(Ordering::SeqCst) > 0, "no connection was ever cut");

    // Everything accepted arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let delivered: HashSet<String> = receiver
            .delivered()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 || tokio::time::Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    crate::harness::report(&format!(
        "connections cut: {}, answers 503: {refused}, lost: {missing}",
        cut.load(Ordering::SeqCst)
    ));
    assert_eq!(missing, 0, "accepted messages were lost");
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_not_500() {
    if !postgres_only("an_exhausted_pool_answers_503_not_500") {
        return;
    }
    // A pool of two connections, given up on after 20 ms: 64 concurrent requests (and the
    // node's own work) must queue for them.
    let server = start_with_a_tiny_pool().await;
    // Even setting up meets the busy pool: a 503 is retried, as a client does.
    let mut app = None;
    for _ in 0..100 {
        let (status, body) = server.post("/api/v1/app", json!({ "name": "Busy" })).await;
        match status.as_u16() {
            201 => {
                app = body["id"].as_str().map(String::from);
                break;
            }
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("creating the app answered {other}: {body}"),
        }
    }
    let app = app.expect("the app was never created");
    let requests = (0..64).map(|n| {
        let request = server
            .client
            .post(format!("{}/api/v1/app/{app}/msg", server.base))
            .bearer_auth(&server.token)
            .json(&json!({ "eventType": "payment.captured", "payload": { "n": n } }))
            .send();
        async move {
            let response = request.await.expect("answer");
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            (status, retry_after)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let refused = answers.iter().filter(|(status, _)| *status == 503).count();
    for (status, retry_after) in &answers {
        assert!(
            *status == 202 || (*status == 503 && *retry_after),
            "an exhausted pool answered {status}: {answers:?}"
        );
    }
    assert!(refused > 0, "the pool was never exhausted: {answers:?}");
    server.stop().await;
}

/// A server whose pool has two connections and gives up after 20 ms. The 20 ms include opening
/// a connection, so on a busy machine starting may itself fail (hookd then exits, as it should
/// when its database is unreachable); such a start is retried, since what this test examines
/// is the requests, not the start.
async fn start_with_a_tiny_pool() -> TestServer {
    for _ in 0..10 {
        let server = TestServer::start_with(|s| {
            s.pool.max_connections = 2;
            s.pool.acquire_timeout = Duration::from_millis(20);
        })
        .await;
        let ping = server
            .client
            .get(format!("{}/api/v1/health/ping", server.base))
            .send()
            .await;
        if ping.is_ok() {
            return server;
        }
        drop(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("hookd never started with a pool of 2 connections and a 20 ms timeout");
}
