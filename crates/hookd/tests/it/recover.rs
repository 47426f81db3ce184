//! `recover`: an endpoint's failed deliveries of a time window sent again, as a durable task
//! the workers run in batches, that survives SIGKILL; `GET /api/v1/background-task/{id}`.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::child::{delivered_ids, post, ChildServer};
use crate::harness::{TestDatabase, TestServer, ADMIN_TOKEN};
use crate::receiver::{Receiver, Reply};

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Posts `count` messages and answers their ids.
async fn send_messages(server: &TestServer, app: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
        ids.push(server.send_message(app, body).await);
    }
    ids
}

#[tokio::test]
async fn recover_sends_again_the_failed_deliveries_of_its_window_only() {
    let server = TestServer::start().await;
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let stats = format!("/api/v1/app/{app}/endpoint/{ep}/stats");

    let before = send_messages(&server, &app, 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let inside = send_messages(&server, &app, 3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let until = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after = send_messages(&server, &app, 1).await;
    // Every delivery fails until exhausted (one attempt and three retries each).
    server
        .wait_for(&stats, Duration::from_secs(10), |s| s["fail"] == 5)
        .await;
    let attempts_before = receiver.received().len();
    assert_eq!(attempts_before, 20);

    receiver.set_script(|_, _| Reply::Status(204));
    let recover = format!("/api/v1/app/{app}/endpoint/{ep}/recover");
    let (status, task) = server
        .post(&recover, json!({"since": since, "until": until}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    assert_eq!(task["status"], "running");
    assert_eq!(task["task"], "endpoint.recover");
    assert!(task["updatedAt"].is_string(), "{task}");
    let id = task["id"].as_str().expect("id");
    assert!(id.starts_with("qtask_"), "{id}");

    let done = server
        .wait_for(
            &format!("/api/v1/background-task/{id}"),
            Duration::from_secs(10),
            |t| t["status"] == "finished",
        )
        .await;
    assert_eq!(done["task"], "endpoint.recover");
    assert_eq!(done["data"]["messagesSent"], 3, "{done}");
    assert_eq!(done["data"]["endpointId"], ep.as_str());
    receiver.wait_delivered(3, Duration::from_secs(10)).await;
    server
        .wait_for(&stats, Duration::from_secs(10), |s| {
            s["success"] == 3 && s["fail"] == 2
        })
        .await;
    let (delivered, duplicates) = delivered_ids(&receiver);
    assert_eq!(duplicates, 0);
    assert_eq!(delivered, inside.iter().cloned().collect::<HashSet<_>>());
    for outside in before.iter().chain(&after) {
        assert!(
            !delivered.contains(outside),
            "{outside} is outside the window"
        );
    }
    // A recovered attempt is a manual one.
    let attempts = server
        .get(&format!("/api/v1/app/{app}/attempt/msg/{}", inside[0]))
        .await
        .1;
    assert_eq!(attempts["data"][0]["status"], 0);
    assert_eq!(attempts["data"][0]["triggerType"], 1);
    server.stop().await;
}

#[tokio::test]
async fn recover_checks_its_input() {
    let server = TestServer::start().await;
    let (app, ep) = server
        .merchant_with_endpoint("https://merchant.example/hook")
        .await;
    let recover = format!("/api/v1/app/{app}/endpoint/{ep}/recover");
    let (status, body) = server.post(&recover, json!({"since": "yesterday"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "since"]));
    let (status, body) = server
        .post(
            &recover,
            json!({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "until"]));
    let (status, _) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/ep_nothere/recover"),
            json!({"since": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/api/v1/background-task/qtask_nothere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(&recover, json!({"since": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    server.stop().await;
}

/// GETs with the admin token and answers the JSON.
async fn get(client: &reqwest::Client, url: String) -> Value {
    client
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// Polls `url` until `done` holds, or panics with the log after `timeout`.
async fn wait_until(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    log: &std::path::Path,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = get(client, url.to_string()).await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not reach the expected state: {value}; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The acceptance test of durable recovery: a recovery is half done (its first batch in flight,
/// the rest waiting) when hookd is killed with SIGKILL; after a restart on the same database
/// every failed delivery of the window reaches the receiver, which now answers 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_cut_by_sigkill_finishes_after_a_restart() {
    const MESSAGES: usize = 10;
    const BATCH: usize = 4;
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    let receiver = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let batch = BATCH.to_string();
    // Short leases: on PostgreSQL the killed node's leases must expire before a restarted node
    // may take its deliveries over (SQLite frees them at start).
    let env = [
        ("HOOKD_LEASE_DURATION", "2s"),
        ("HOOKD_TASK_BATCH_SIZE", batch.as_str()),
    ];
    let server = ChildServer::start(&db, &log, &env).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let app = post(&client, format!("{base}/api/v1/app"), json!({"name": "M"})).await;
    let app = app["id"].as_str().expect("id").to_string();
    let endpoint = post(
        &client,
        format!("{base}/api/v1/app/{app}/endpoint"),
        json!({"url": receiver.url("/hook")}),
    )
    .await;
    let ep = endpoint["id"].as_str().expect("id").to_string();
    let mut sent = HashSet::new();
    for n in 0..MESSAGES {
        let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
        let msg = post(&client, format!("{base}/api/v1/app/{app}/msg"), body).await;
        sent.insert(msg["id"].as_str().expect("id").to_string());
    }
    let stats = format!("{base}/api/v1/app/{app}/endpoint/{ep}/stats");
    wait_until(&client, &stats, Duration::from_secs(30), &log, |s| {
        s["fail"] == MESSAGES
    })
    .await;

    // The receiver now holds every request open: the first batch stays in flight, and the
    // recovery waits for it before making the next batch due.
    receiver.set_script(|_, _| Reply::Stall);
    let task = post(
        &client,
        format!("{base}/api/v1/app/{app}/endpoint/{ep}/recover"),
        json!({"since": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let task_url = format!(
        "{base}/api/v1/background-task/{}",
        task["id"].as_str().expect("id")
    );
    wait_until(&client, &stats, Duration::from_secs(10), &log, |s| {
        s["sending"] == BATCH
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let half = get(&client, task_url.clone()).await;
    assert_eq!(half["status"], "running", "{half}");
    assert_eq!(half["data"]["messagesSent"], BATCH, "{half}");

    server.kill();
    receiver.set_script(|_, _| Reply::Status(204));
    let restarted = ChildServer::start(&db, &log, &env).await;
    let task_url = task_url.replace(&base, &restarted.base);
    let stats = stats.replace(&base, &restarted.base);
    let done = wait_until(&client, &task_url, Duration::from_secs(60), &log, |t| {
        t["status"] == "finished"
    })
    .await;
    assert_eq!(done["data"]["messagesSent"], MESSAGES, "{done}");
    // hookd itself recorded every delivery as a success (the requests stalled at the kill do
    // not count: hookd never saw their answers).
    wait_until(&client, &stats, Duration::from_secs(60), &log, |s| {
        s["success"] == MESSAGES && s["fail"] == 0
    })
    .await;
    let (delivered, _) = delivered_ids(&receiver);
    let missing: Vec<_> = sent.difference(&delivered).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    drop(restarted);
}
