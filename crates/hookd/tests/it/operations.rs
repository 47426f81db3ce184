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
        .env("HOOKD_ENDPOINT_MAX_IN_FLIGHT", "1000")
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

/// Message id (`webhook-id`) → whether the delivery succeeded and how many successful attempts
/// are recorded for it, straight from the SQLite file.
fn recorded_successes(db: &std::path::Path) -> std::collections::HashMap<String, (bool, i64)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut statement = conn
        .prepare(
            "SELECT d.msg_id, d.status = 0,
                    (SELECT COUNT(*) FROM attempts a WHERE a.delivery_id = d.id AND a.success = 1)
             FROM deliveries d",
        )
        .expect("prepare");
    statement
        .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempts_in_flight_finish_and_records_them() {
    const MESSAGES: usize = 1000;
    /// Requests that must have reached the receiver, unanswered, when SIGTERM is sent.
    const IN_FLIGHT_AT_TERM: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hookd.db");
    // Each delivery is answered 1.5 s after it arrived, so the ones that arrived just before
    // SIGTERM are still in flight when it is sent. The script runs when a request arrives.
    let arrivals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&arrivals);
    let receiver = Receiver::scripted(move |_, _| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::Slow(204, 1500)
    })
    .await;
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

    // SIGTERM once enough requests wait for their answers (none is answered before 1.5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while arrivals.load(std::sync::atomic::Ordering::SeqCst) < IN_FLIGHT_AT_TERM {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hookd never had {IN_FLIGHT_AT_TERM} attempts in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Counted first: a request counted here arrived before `term_at`.
    let arrived_at_term = arrivals.load(std::sync::atomic::Ordering::SeqCst);
    let term_at = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || {
        // Bounded: a shutdown that hangs fails the test instead of hanging it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("join");
    let exit = exit.expect("hookd did not exit within 60 s of SIGTERM");
    assert!(exit.success(), "hookd exits 0 on SIGTERM: {exit:?}");

    // Every request that had arrived before SIGTERM was answered: hookd kept its connection
    // open until the answer came, instead of dropping the attempt.
    let in_flight: HashSet<String> = receiver
        .received()
        .iter()
        .filter(|r| r.arrived < term_at)
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert!(
        in_flight.len() >= arrived_at_term,
        "only {} of the {arrived_at_term} requests in flight at SIGTERM were answered",
        in_flight.len()
    );
    // ... and their success is recorded: the delivery is done with one successful attempt.
    let recorded = recorded_successes(&db);
    let unrecorded: Vec<_> = in_flight
        .iter()
        .filter(|id| recorded.get(*id) != Some(&(true, 1)))
        .map(|id| (id, recorded.get(id)))
        .collect();
    assert!(
        unrecorded.is_empty(),
        "{} deliveries answered 2xx before shutdown are not recorded as done with one \
         successful attempt, e.g. {:?}",
        unrecorded.len(),
        unrecorded.iter().take(3).collect::<Vec<_>>()
    );
    // The rest are pending again, never left leased ("sending", 3).
    let states = delivery_states(&db);
    let total: i64 = states.iter().map(|(_, n)| n).sum();
    assert_eq!(total, MESSAGES as i64, "{states:?}");
    assert!(
        states
            .iter()
            .all(|(status, _)| *status == 0 || *status == 1),
        "{states:?}"
    );

    // After a restart, everything accepted arrives, and what was recorded is not sent again.
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
    let resent = receiver
        .received()
        .iter()
        .filter(|r| r.arrived >= term_at && in_flight.contains(r.header("webhook-id")))
        .count();
    assert_eq!(
        resent, 0,
        "deliveries recorded before shutdown were sent again"
    );
    let _ = child.kill();
    let _ = child.wait();
}
