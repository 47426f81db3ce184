//! Operating hookd: metrics move, and SIGTERM drains cleanly without losing or stranding work.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::harness::{TestServer, ADMIN_TOKEN};
use crate::receiver::{Receiver, Reply};

/// The value of one sample line of the Prometheus text, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_after_a_delivery() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let read = || async {
        server
            .client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = read().await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {}}),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    let after = read().await;
    let ingested = "hookd_messages_ingested_total";
    let successes = "hookd_attempts_total{outcome=\"success\"}";
    assert!(
        sample(&after, ingested) >= sample(&before, ingested) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, successes) >= sample(&before, successes) + 1.0,
        "{after}"
    );
    assert!(
        after.contains("hookd_delivery_latency_seconds_bucket"),
        "{after}"
    );
    assert!(
        after.contains("hookd_commit_duration_seconds_bucket{what=\"ingest\""),
        "{after}"
    );
    assert!(
        after.contains("hookd_http_requests_total{method=\"POST\",route=\"/api/v1/app/{app_id}/msg\",status=\"2xx\"}"),
        "{after}"
    );
    assert!(!after.contains(&app), "no ids in labels");
    server.stop().await;
}

/// Counts deliveries by status code straight from the SQLite file.
fn delivery_states(db: &std::path::Path) -> Vec<(i64, i64)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut statement = conn
        .prepare("SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status")
        .expect("prepare");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn spawn_hookd(db: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(crate::child::hookd_binary())
        .arg("serve")
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("HOOKD_MAX_IN_FLIGHT", "1000")
        .env("HOOKD_SHUTDOWN_TIMEOUT", "30s")
        .env("HOOKD_REQUEST_TIMEOUT", "20s")
        .env("HOOKD_RETRY_SCHEDULE", "100ms,100ms,100ms")
        .env("HOOKD_API_RATE_LIMIT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hookd")
}

async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/api/v1/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hookd did not become healthy");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_thousand_deliveries_loses_and_strands_nothing() {
    const MESSAGES: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hookd.db");
    // Each delivery takes 1.5 s to be answered, so the deliveries are in flight at SIGTERM.
    let receiver = Receiver::scripted(|_, _| Reply::Slow(204, 1500)).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_hookd(&db, port);
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let post = move |path: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let response = client
                .post(path)
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("post");
            assert!(response.status().is_success(), "{}", response.status());
            response.json::<serde_json::Value>().await.expect("json")
        }
    };
    let app = post(format!("{base}/api/v1/app"), json!({"name": "M"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    post(
        format!("{base}/api/v1/app/{app}/endpoint"),
        json!({"url": receiver.url("/")}),
    )
    .await;
    let limit = Arc::new(Semaphore::new(32));
    let mut posts = Vec::new();
    for i in 0..MESSAGES {
        let (limit, post, url) = (
            Arc::clone(&limit),
            post.clone(),
            format!("{base}/api/v1/app/{app}/msg"),
        );
        posts.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("permit");
            post(
                url,
                json!({"eventType": "payment.captured", "payload": {"n": i}}),
            )
            .await["id"]
                .as_str()
                .expect("id")
                .to_string()
        }));
    }
    let mut accepted = HashSet::new();
    for handle in posts {
        accepted.insert(handle.await.expect("post"));
    }

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "hookd exits 0 on SIGTERM: {exit:?}");

    // Every delivery is either done or pending again; none is left leased ("sending", 3).
    let states = delivery_states(&db);
    let total: i64 = states.iter().map(|(_, n)| n).sum();
    assert_eq!(total, MESSAGES as i64, "{states:?}");
    assert!(
        states
            .iter()
            .all(|(status, _)| *status == 0 || *status == 1),
        "{states:?}"
    );

    // After a restart, everything accepted arrives.
    receiver.set_script(|_, _| Reply::Status(204));
    let mut child = spawn_hookd(&db, port);
    wait_healthy(&base).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> = receiver
            .delivered()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        if accepted.is_subset(&delivered) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not everything arrived after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
