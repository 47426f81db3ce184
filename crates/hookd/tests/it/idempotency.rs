//! Ingest that a retry cannot double: `eventId` is unique per application, and an
//! `idempotency-key` replays the first answer.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestDatabase, TestServer};

#[tokio::test]
async fn a_reused_event_id_is_a_conflict_within_its_application_only() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let other = server.create_app("Other merchant").await;
    let message =
        json!({"eventType": "payment.captured", "eventId": "evt-42", "payload": {"n": 1}});
    let first = server.send_message(&app, message.clone()).await;

    let (status, body) = server
        .post(&format!("/api/v1/app/{app}/msg"), message.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body,
        json!({"code": "conflict", "detail": "a message with this eventId already exists"})
    );
    // Another application may use the same eventId.
    server.send_message(&other, message).await;
    // The first message is still the one the eventId names, and it is the only one.
    let (_, by_event_id) = server.get(&format!("/api/v1/app/{app}/msg/evt-42")).await;
    assert_eq!(by_event_id["id"], first.as_str());
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    server.stop().await;
}

/// Posts `body` to `path` with the admin token and an idempotency key; answers the status, the
/// raw body, and whether the answer says it is a replay.
async fn post_with_key(
    server: &TestServer,
    token: &str,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> (StatusCode, String, bool) {
    let response = server
        .client
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, response.text().await.expect("body"), replayed)
}

fn message_count(list: &serde_json::Value) -> usize {
    list["data"].as_array().expect("data").len()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_runs_nothing() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "payment.captured", "payload": {"amount": 4999}});
    let token = server.token.clone();

    let (status, first, replayed) = post_with_key(&server, &token, &path, "key-1", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert!(!replayed);
    for _ in 0..2 {
        let (status, again, replayed) = post_with_key(&server, &token, &path, "key-1", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(
            again, first,
            "a replay answers the first body byte for byte"
        );
        assert!(replayed);
    }
    let (_, list) = server.get(&path).await;
    assert_eq!(message_count(&list), 1, "{list}");

    // The same key with another body is refused, and runs nothing.
    let other = json!({"eventType": "payment.captured", "payload": {"amount": 1}});
    let (status, answer, _) = post_with_key(&server, &token, &path, "key-1", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["code"], "idempotency_key_reused");
    assert_eq!(
        answer["detail"][0]["loc"],
        json!(["header", "idempotency-key"])
    );
    // So is the same body on another path.
    let other_app = server.create_app("Other").await;
    let (status, _, _) = post_with_key(
        &server,
        &token,
        &format!("/api/v1/app/{other_app}/msg"),
        "key-1",
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = server.get(&path).await;
    assert_eq!(message_count(&list), 1);

    // Error answers are replayed too (all but server errors): a refused body stays refused.
    let invalid = json!({"eventType": "payment.captured", "payload": [1]});
    let (status, first, _) = post_with_key(&server, &token, &path, "key-2", &invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, again, replayed) = post_with_key(&server, &token, &path, "key-2", &invalid).await;
    assert_eq!(
        (status, again, replayed),
        (StatusCode::UNPROCESSABLE_ENTITY, first, true)
    );

    // Without a key, nothing is deduplicated.
    server.send_message(&app, body.clone()).await;
    let (_, list) = server.get(&path).await;
    assert_eq!(message_count(&list), 2);
    server.stop().await;
}

#[tokio::test]
async fn keys_belong_to_the_caller_so_tenants_cannot_collide() {
    let server = TestServer::start().await;
    let a = server.create_app("Tenant A").await;
    let b = server.create_app("Tenant B").await;
    let mut tokens = Vec::new();
    for app in [&a, &b] {
        let (_, access) = server
            .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
            .await;
        tokens.push(access["token"].as_str().expect("token").to_string());
    }
    // The same key, used by each tenant (and the org) for its own request, runs each one.
    for (app, token) in [(&a, &tokens[0]), (&b, &tokens[1]), (&a, &server.token)] {
        let body = json!({"eventType": "payment.created", "payload": {"for": app}});
        let path = format!("/api/v1/app/{app}/msg");
        let (status, answer, replayed) =
            post_with_key(&server, token, &path, "shared-key", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert!(!replayed);
    }
    assert_eq!(
        message_count(&server.get(&format!("/api/v1/app/{a}/msg")).await.1),
        2
    );
    assert_eq!(
        message_count(&server.get(&format!("/api/v1/app/{b}/msg")).await.1),
        1
    );
    // A bad key is a 422 naming the header.
    let (status, answer, _) = post_with_key(
        &server,
        &server.token,
        &format!("/api/v1/app/{a}/msg"),
        &"k".repeat(300),
        &json!({"eventType": "payment.created", "payload": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.contains("idempotency-key"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_run_once() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let app = server.create_app("Merchant").await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "payment.captured", "payload": {"amount": 4999}});
    let mut racers = Vec::new();
    for _ in 0..16 {
        let (server, path, body) = (server.clone(), path.clone(), body.clone());
        racers.push(tokio::spawn(async move {
            let token = server.token.clone();
            post_with_key(&server, &token, &path, "raced", &body).await
        }));
    }
    let mut accepted = Vec::new();
    for racer in racers {
        let (status, answer, _) = racer.await.expect("racer");
        match status {
            StatusCode::ACCEPTED => accepted.push(answer),
            StatusCode::CONFLICT => {
                let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
                assert_eq!(answer["code"], "idempotency_in_progress", "{answer}");
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert!(!accepted.is_empty());
    assert!(
        accepted.iter().all(|a| *a == accepted[0]),
        "one answer for all"
    );
    let (_, list) = server.get(&path).await;
    assert_eq!(message_count(&list), 1, "{list}");
}

/// The in-flight state, made deterministic: another node (here a second store handle on the
/// same database) holds the key while this server is asked to run the same request.
#[tokio::test]
async fn a_request_still_in_flight_elsewhere_is_a_409_until_its_lock_lapses() {
    use hookd::store::{IdempotencyClaim, IdempotencyKey, IdempotencyState, OpenMode, PoolOptions};

    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "payment.captured", "payload": {"amount": 4999}});
    let bytes = serde_json::to_vec(&body).expect("json");
    let fingerprint = hookd::api::idempotency::fingerprint(&reqwest::Method::POST, &path, &bytes);
    let db = server.database();
    let pool = PoolOptions {
        max_connections: 2,
        ..PoolOptions::default()
    };
    let other_node = hookd::store::open(&db.url, db.main_secret(), &pool, OpenMode::Tool)
        .await
        .expect("open the store");
    let now = hookd::domain::time::now_millis();
    let claim = |key: &str, locked_until: i64| IdempotencyClaim {
        key: IdempotencyKey {
            scope: "org".into(),
            key: key.into(),
        },
        fingerprint: fingerprint.clone(),
        now,
        locked_until,
        expires_at: now + 86_400_000,
    };
    let held = claim("in-flight", now + 60_000);
    assert_eq!(
        other_node
            .claim_idempotency_key(&held)
            .await
            .expect("claim"),
        IdempotencyState::Acquired
    );
    assert_eq!(
        other_node
            .claim_idempotency_key(&held)
            .await
            .expect("claim"),
        IdempotencyState::InFlight {
            fingerprint: fingerprint.clone()
        }
    );

    let token = server.token.clone();
    let (status, answer, _) = post_with_key(&server, &token, &path, "in-flight", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["code"], "idempotency_in_progress");
    assert_eq!(message_count(&server.get(&path).await.1), 0);

    // A holder whose lock lapsed (its node died) no longer blocks the key.
    let dead = claim("dead-holder", now - 1);
    assert_eq!(
        other_node
            .claim_idempotency_key(&dead)
            .await
            .expect("claim"),
        IdempotencyState::Acquired
    );
    let (status, answer, _) = post_with_key(&server, &token, &path, "dead-holder", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(message_count(&server.get(&path).await.1), 1);

    // Records past their 24 hours are pruned; fresh ones stay.
    let expired = IdempotencyClaim {
        expires_at: now - 1,
        ..claim("expired", now + 60_000)
    };
    other_node
        .claim_idempotency_key(&expired)
        .await
        .expect("claim");
    let pruned = other_node.prune_expired(now, 1000).await.expect("prune");
    assert_eq!(pruned, 1);
    assert_eq!(
        other_node
            .claim_idempotency_key(&held)
            .await
            .expect("claim"),
        IdempotencyState::InFlight { fingerprint }
    );
    drop(other_node);
    server.stop().await;
}

/// One statement about idempotency key `key` whose first column is an `expires_at`.
async fn key_sql(db: &TestDatabase, sqlite: &str, postgres: &str, key: &str) -> Option<i64> {
    db.first_text(sqlite, postgres, key)
        .await
        .map(|text| text.parse().expect("an integer"))
}

/// Makes the stored answer for `key` older by `millis`, as if that much time had gone by
/// (the clock cannot be moved; the record's expiry can).
async fn age_key(db: &TestDatabase, key: &str, millis: i64) {
    let aged = key_sql(
        db,
        &format!("UPDATE idempotency_keys SET expires_at = expires_at - {millis} WHERE key = ?1 RETURNING CAST(expires_at AS TEXT)"),
        &format!("UPDATE idempotency_keys SET expires_at = expires_at - {millis} WHERE key = $1 RETURNING CAST(expires_at AS TEXT)"),
        key,
    )
    .await;
    assert!(aged.is_some(), "no idempotency record for {key}");
}

/// The window is the API's own: a key's answer is kept 24 hours from the request, replayed up
/// to the last minute of it, and a request after it runs again.
#[tokio::test]
async fn a_key_is_replayed_for_24_hours_and_runs_again_after() {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    const MINUTE_MS: i64 = 60 * 1000;
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "payment.captured", "payload": {"amount": 4999}});
    let token = server.token.clone();

    let before = hookd::domain::time::now_millis();
    let (status, first, replayed) = post_with_key(&server, &token, &path, "day-key", &body).await;
    let after = hookd::domain::time::now_millis();
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, false), "{first}");
    let expires_at = key_sql(
        server.database(),
        "SELECT CAST(expires_at AS TEXT) FROM idempotency_keys WHERE key = ?1",
        "SELECT CAST(expires_at AS TEXT) FROM idempotency_keys WHERE key = $1",
        "day-key",
    )
    .await
    .expect("the key is stored");
    assert!(
        (before + DAY_MS..=after + DAY_MS).contains(&expires_at),
        "the answer is kept until {expires_at}, not 24 hours after the request ({before}..{after})"
    );

    // 23 h 59 min later: still the first answer, and still one message.
    age_key(server.database(), "day-key", DAY_MS - MINUTE_MS).await;
    let (status, again, replayed) = post_with_key(&server, &token, &path, "day-key", &body).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, true));
    assert_eq!(
        again, first,
        "a replay answers the first body byte for byte"
    );
    assert_eq!(message_count(&server.get(&path).await.1), 1);

    // 24 h 1 min later: the key is free again and the request runs as a new one.
    age_key(server.database(), "day-key", 2 * MINUTE_MS).await;
    let (status, fresh, replayed) = post_with_key(&server, &token, &path, "day-key", &body).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, false), "{fresh}");
    assert_ne!(fresh, first, "a new message, with its own id");
    assert_eq!(message_count(&server.get(&path).await.1), 2);
    server.stop().await;
}
