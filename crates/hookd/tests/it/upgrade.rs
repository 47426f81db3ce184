//! A database written by the first schema (migration 0001 alone, rows as the first releases
//! wrote them, endpoint secrets in clear as the first SQLite release kept them) upgrades to the
//! current schema at start, and everything in it is delivered; a database a newer hookd
//! migrated is refused with a clear message.

use std::time::Duration;

use hookd::domain::time::now_millis;
use hookd::domain::{AppId, AttemptId, DeliveryId, EndpointId, MessageId, TokenId};
use hookd_signing::Secret;
use reqwest::Method;
use serde_json::json;

use crate::harness::{contains, TestDatabase, TestServer};
use crate::receiver::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const RETIRING: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
const OLD_TOKEN: &str = "hookd_org_written_by_the_first_release_0123456789";

/// The rows of the first release, for the statements of both backends.
struct OldRows {
    app: AppId,
    endpoint: EndpointId,
    msg: MessageId,
    delivery: DeliveryId,
    attempt: AttemptId,
    token: TokenId,
    now: i64,
    retiring: String,
}

impl OldRows {
    fn new() -> Self {
        let now = now_millis();
        Self {
            app: AppId::generate(),
            endpoint: EndpointId::generate(),
            msg: MessageId::generate(),
            delivery: DeliveryId::generate(),
            attempt: AttemptId::generate(),
            token: TokenId::generate(),
            now,
            retiring: json!([{ "secret": RETIRING, "expires_at": now + 3_600_000 }]).to_string(),
        }
    }
}

/// SQLite at migration 0001, with the first release's rows.
fn sqlite_at_first_schema(database: &TestDatabase, rows: &OldRows, url: &str) {
    let path = database
        .url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL");
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(include_str!(
        "../../src/store/sqlite/migrations/0001_initial.sql"
    ))
    .expect("0001");
    conn.execute_batch(
        "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES ('0001_initial', 0);",
    )
    .expect("migration record");
    let t = rows.now - 600_000;
    let statements: [(&str, Vec<rusqlite::types::Value>); 7] = [
        (
            "INSERT INTO applications (id, uid, name, created_at, updated_at) VALUES (?1, 'old-shop', 'Old shop', ?2, ?2)",
            vec![rows.app.to_string().into(), t.into()],
        ),
        (
            "INSERT INTO endpoints (id, app_id, url, secret, retiring_secrets, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            vec![rows.endpoint.to_string().into(), rows.app.to_string().into(), url.to_string().into(), SECRET.to_string().into(), rows.retiring.clone().into(), t.into()],
        ),
        (
            "INSERT INTO event_types (name, description, created_at, updated_at) VALUES ('payment.captured', 'A payment was captured', ?1, ?1)",
            vec![t.into()],
        ),
        (
            "INSERT INTO messages (id, app_id, event_type, payload, created_at) VALUES (?1, ?2, 'payment.captured', '{\"old\":true}', ?3)",
            vec![rows.msg.to_string().into(), rows.app.to_string().into(), t.into()],
        ),
        (
            "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, updated_at) VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?5)",
            vec![rows.delivery.to_string().into(), rows.msg.to_string().into(), rows.endpoint.to_string().into(), rows.app.to_string().into(), rows.now.into()],
        ),
        (
            "INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success, response_status_code, response, response_duration_ms, trigger_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 503, 'down for maintenance', 12, 0, ?7)",
            vec![rows.attempt.to_string().into(), rows.delivery.to_string().into(), rows.app.to_string().into(), rows.msg.to_string().into(), rows.endpoint.to_string().into(), url.to_string().into(), (t + 1000).into()],
        ),
        (
            "INSERT INTO api_tokens (id, hash, name, created_at) VALUES (?1, ?2, 'first release', ?3)",
            vec![rows.token.to_string().into(), hookd::api::auth::hash_token(OLD_TOKEN).into(), t.into()],
        ),
    ];
    for (sql, values) in statements {
        conn.execute(sql, rusqlite::params_from_iter(values))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// PostgreSQL at migration 0001 (applied by sqlx as hookd applies it), with the same rows.
async fn postgres_at_first_schema(database: &TestDatabase, rows: &OldRows, url: &str) {
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/postgres/migrations");
    let mut migrator = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
        .await
        .expect("migrations");
    let first: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version == 1)
        .cloned()
        .collect();
    migrator.migrations = std::borrow::Cow::Owned(first);
    migrator.run(&pool).await.expect("0001");
    let t = rows.now - 600_000;
    let (app, ep, msg) = (
        rows.app.to_string(),
        rows.endpoint.to_string(),
        rows.msg.to_string(),
    );
    let run = |sql: &'static str| sqlx::query(sql);
    run("INSERT INTO applications (id, uid, name, created_at, updated_at) VALUES ($1, 'old-shop', 'Old shop', $2, $2)")
        .bind(&app).bind(t).execute(&pool).await.expect("app");
    run("INSERT INTO endpoints (id, app_id, url, secret, retiring_secrets, created_at, updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6)")
        .bind(&ep).bind(&app).bind(url).bind(SECRET).bind(&rows.retiring).bind(t).execute(&pool).await.expect("endpoint");
    run("INSERT INTO event_types (name, description, created_at, updated_at) VALUES ('payment.captured', 'A payment was captured', $1, $1)")
        .bind(t).execute(&pool).await.expect("event type");
    run("INSERT INTO messages (id, app_id, event_type, created_at) VALUES ($1, $2, 'payment.captured', $3)")
        .bind(&msg).bind(&app).bind(t).execute(&pool).await.expect("message");
    run("INSERT INTO message_payloads (msg_id, payload) VALUES ($1, '{\"old\":true}')")
        .bind(&msg)
        .execute(&pool)
        .await
        .expect("payload");
    run("INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, updated_at) VALUES ($1, $2, $3, $4, 1, 1, $5, $5)")
        .bind(rows.delivery.to_string()).bind(&msg).bind(&ep).bind(&app).bind(rows.now).execute(&pool).await.expect("delivery");
    run("INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success, response_status_code, response, response_duration_ms, trigger_type, created_at) VALUES ($1, $2, $3, $4, $5, $6, FALSE, 503, 'down for maintenance', 12, 0, $7)")
        .bind(rows.attempt.to_string()).bind(rows.delivery.to_string()).bind(&app).bind(&msg).bind(&ep).bind(url).bind(t + 1000).execute(&pool).await.expect("attempt");
    run("INSERT INTO api_tokens (id, hash, name, created_at) VALUES ($1, $2, 'first release', $3)")
        .bind(rows.token.to_string())
        .bind(hookd::api::auth::hash_token(OLD_TOKEN))
        .bind(t)
        .execute(&pool)
        .await
        .expect("token");
    pool.close().await;
}

#[tokio::test]
async fn a_first_schema_database_upgrades_and_delivers_everything() {
    let database = TestDatabase::create().await;
    let receiver = Receiver::start().await;
    let rows = OldRows::new();
    let url = receiver.url("/old");
    if database.is_postgres() {
        postgres_at_first_schema(&database, &rows, &url).await;
    } else {
        sqlite_at_first_schema(&database, &rows, &url);
    }

    let server = TestServer::start_on(database, |_| {}).await;
    let (app, ep, msg) = (&rows.app, &rows.endpoint, &rows.msg);
    // The waiting delivery goes out, signed with the old secret and the one still retiring.
    let got = &receiver.wait_delivered(1, Duration::from_secs(20)).await[0];
    assert_eq!(got.header("webhook-id"), msg.as_str());
    assert_eq!(&got.body[..], br#"{"old":true}"#);
    let timestamp: i64 = got.header("webhook-timestamp").parse().expect("ts");
    let header = got.header("webhook-signature");
    for secret in [SECRET, RETIRING] {
        let secret = Secret::parse(secret).expect("secret");
        assert!(
            secret.verify_header(msg.as_str(), timestamp, &got.body, header),
            "{header}"
        );
    }
    // Everything reads through the API, the first release's token included.
    let (status, apps) = server
        .call_as(OLD_TOKEN, Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["data"][0]["uid"], "old-shop");
    assert_eq!(
        server.endpoint_secret(app.as_str(), ep.as_str()).await,
        SECRET
    );
    let (status, _) = server.get("/api/v1/event-type/payment.captured").await;
    assert_eq!(status, 200);
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(20),
            |page| page["data"].as_array().is_some_and(|a| a.len() == 2),
        )
        .await;
    let codes: Vec<_> = attempts["data"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["responseStatusCode"].as_i64().unwrap_or_default())
        .collect();
    assert!(codes.contains(&503) && codes.contains(&204), "{attempts}");
    // The secrets were sealed at the upgrade: nothing of them is left in clear.
    let bytes = server.database().endpoint_bytes().await;
    for secret in [SECRET, RETIRING] {
        assert!(
            !contains(&bytes, &secret[6..]),
            "{secret} is still in clear"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_hookd_is_refused() {
    let database = TestDatabase::create().await;
    let server = TestServer::start_on(database, |_| {}).await;
    server.create_app("Opened").await; // the store is open and migrated
    let database = server.database();
    if database.is_postgres() {
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from the future', TRUE, '\\x00', 0)",
        )
        .execute(&pool)
        .await
        .expect("future migration");
        pool.close().await;
    } else {
        let path = database.url.strip_prefix("sqlite://").expect("sqlite");
        let conn = rusqlite::Connection::open(path).expect("open");
        conn.execute(
            "INSERT INTO schema_migrations VALUES ('9999_from_the_future', 0)",
            [],
        )
        .expect("future migration");
    }
    let opened = hookd::store::open(
        &database.url,
        database.main_secret(),
        &hookd::store::PoolOptions::default(),
        hookd::store::OpenMode::Tool,
    )
    .await;
    let err = opened.err().expect("refused").to_string();
    assert!(err.contains("newer hookd"), "{err}");
    assert!(err.contains("9999"), "{err}");
    server.stop().await;
}
