//! `hookd listen` on a deployment of several nodes sharing one PostgreSQL database: the
//! session lives on the node the CLI talks to, and only that node delivers to it.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{postgres_only, TestServer, ADMIN_TOKEN};
use crate::receiver::{Receiver, Reply};

const MESSAGES: usize = 100;

/// The nodes' settings. A failed attempt would be retried only after a minute: every delivery
/// these tests wait for must succeed the first time. The CLI relays one delivery at a time, so
/// a burst of them waits in the session's queue, and an attempt's time includes that wait: the
/// timeout is long enough for a hundred of them (a debug build on a loaded machine).
fn settings(s: &mut hookd::config::Settings) {
    s.retry.schedule = vec![Duration::from_secs(60); 3];
    s.request_timeout = Duration::from_secs(30);
}

/// Starts `hookd listen` against `base`, forwarding to `local`; answers once it listens.
async fn start_cli(base: &str, app: &str, local: &Receiver) -> tokio::process::Child {
    let mut cli = tokio::process::Command::new(crate::child::hookd_binary())
        .args([
            "listen",
            "--forward-to",
            &local.url("/webhook"),
            "--app",
            app,
            "--url",
            base,
            "--token",
            ADMIN_TOKEN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run hookd listen");
    let mut lines = tokio::io::BufReader::new(cli.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("listen starts")
        .expect("read")
        .expect("a line");
    assert!(first.starts_with("listening"), "{first}");
    // Keep reading its output, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    cli
}

/// The listen session's endpoint of the application (the only `hookd-listen://` one).
async fn listen_endpoint(server: &TestServer, app: &str) -> String {
    let (_, page) = server
        .get(&format!("/api/v1/app/{app}/endpoint?limit=250"))
        .await;
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("hookd-listen://"))
        })
        .and_then(|e| e["id"].as_str())
        .expect("the listen session's endpoint")
        .to_string()
}

/// Waits until every message was delivered to `local`, by webhook id.
async fn wait_all_delivered(local: &Receiver, messages: &[String], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got: HashSet<String> = local
            .delivered()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        let missing = messages.iter().filter(|m| !got.contains(*m)).count();
        if missing == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} messages never reached the listen session",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that each message's delivery to the listen endpoint took exactly one attempt, a
/// success: no node that does not hold the session ever attempted it.
async fn assert_first_attempts_succeeded(
    server: &TestServer,
    app: &str,
    endpoint: &str,
    messages: &[String],
) {
    for msg in messages {
        let path = format!("/api/v1/app/{app}/attempt/msg/{msg}");
        let attempts = server
            .wait_for(&path, Duration::from_secs(10), |b| {
                b["data"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|a| a["endpointId"] == endpoint))
            })
            .await;
        let to_session: Vec<&Value> = attempts["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|a| a["endpointId"] == endpoint)
            .collect();
        assert_eq!(
            to_session.len(),
            1,
            "{msg} took more than one attempt: {to_session:?}"
        );
        assert_eq!(to_session[0]["status"], 0, "{:?}", to_session[0]);
        assert_eq!(to_session[0]["responseStatusCode"], 202);
    }
}

/// What each node counted as delivered (`traffic_minutes`), by node id.
async fn delivered_by_node(db_url: &str) -> Vec<(String, i64)> {
    let pool = sqlx::PgPool::connect(db_url).await.expect("connect");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node_id, SUM(delivered)::BIGINT FROM traffic_minutes GROUP BY node_id
         ORDER BY node_id",
    )
    .fetch_all(&pool)
    .await
    .expect("traffic");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_session_on_one_node_gets_every_delivery_published_through_another_at_once() {
    if !postgres_only("multi_node_listen") {
        return;
    }
    let node_a = TestServer::start_with(settings).await;
    let node_b = node_a.start_another(settings).await;
    let app = node_a.create_app("Merchant").await;
    let local = Receiver::scripted(|_, _| Reply::Status(202)).await;
    let mut cli = start_cli(&node_a.base, &app, &local).await;
    let session_endpoint = listen_endpoint(&node_a, &app).await;

    // Both nodes work: a throttled endpoint is never leased at ingest, so both claim its
    // deliveries (and would claim the session's, if anything let them).
    let busy = Receiver::start().await;
    node_b
        .create_endpoint(&app, &busy.url("/busy"), json!({"rateLimit": 200}))
        .await;

    let bodies = (0..MESSAGES)
        .map(|n| json!({"eventType": "payment.captured", "payload": {"n": n}}))
        .collect();
    let messages = node_b.send_messages(&app, bodies, 8).await;

    wait_all_delivered(&local, &messages, Duration::from_secs(30)).await;
    busy.wait_delivered(MESSAGES, Duration::from_secs(30)).await;
    assert_first_attempts_succeeded(&node_b, &app, &session_endpoint, &messages).await;
    let reached: HashSet<String> = local
        .delivered()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(
        reached.len(),
        MESSAGES,
        "each message reached the session once"
    );

    // Every node counts its deliveries every 2 s: wait for all of them, then check that both
    // nodes delivered to the ordinary endpoint. The session's deliveries are node A's alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let counts = loop {
        let counts = delivered_by_node(&node_a.database().url).await;
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        if total >= 2 * MESSAGES as i64 || tokio::time::Instant::now() >= deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(counts.len(), 2, "two nodes delivered: {counts:?}");
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2 * MESSAGES as i64, "{counts:?}");
    let (most, least) = (
        counts.iter().map(|(_, n)| *n).max().unwrap_or(0),
        counts.iter().map(|(_, n)| *n).min().unwrap_or(0),
    );
    assert!(
        least > 0 && most > MESSAGES as i64,
        "both nodes claimed the ordinary endpoint's deliveries: {counts:?}"
    );

    let _ = cli.kill().await;
    node_b.stop().await;
    node_a.stop().await;
}

/// A loopback TCP proxy standing in for a load balancer: each new connection goes to the
/// address `target` holds at that moment.
async fn proxy(target: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = target.lock().expect("target").clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_session_moves_to_another_node_when_its_node_stops() {
    if !postgres_only("multi_node_listen") {
        return;
    }
    let node_a = TestServer::start_with(settings).await;
    let node_b = node_a.start_another(settings).await;
    let address = |base: &str| base.trim_start_matches("http://").to_string();
    let target = Arc::new(Mutex::new(address(&node_a.base)));
    let balancer = proxy(Arc::clone(&target)).await;
    let app = node_a.create_app("Merchant").await;
    let local = Receiver::scripted(|_, _| Reply::Status(202)).await;
    let mut cli = start_cli(&balancer, &app, &local).await;
    let session_endpoint = listen_endpoint(&node_b, &app).await;

    let before = node_b
        .send_message(&app, json!({"eventType": "a", "payload": {"n": 0}}))
        .await;
    let before = [before];
    wait_all_delivered(&local, &before, Duration::from_secs(10)).await;
    assert_first_attempts_succeeded(&node_b, &app, &session_endpoint, &before).await;

    // The balancer now sends new connections to node B, and node A stops. Messages published
    // meanwhile wait for the session: node A looks alive for 10 s more
    // (`LISTEN_HOLDER_SILENT_MS`), but as soon as the CLI re-opens the session through the
    // balancer, node B holds it and takes them, well within those 10 s.
    *target.lock().expect("target") = address(&node_b.base);
    node_a.stop().await;
    let bodies = (1..=20)
        .map(|n| json!({"eventType": "a", "payload": {"n": n}}))
        .collect();
    let after = node_b.send_messages(&app, bodies, 4).await;
    let started = tokio::time::Instant::now();
    wait_all_delivered(&local, &after, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the re-opened session got them at once, not when node A's pin lapsed: {:?}",
        started.elapsed()
    );
    assert_first_attempts_succeeded(&node_b, &app, &session_endpoint, &after).await;

    let _ = cli.kill().await;
    node_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_worker_refuses_to_hold_a_listen_session() {
    if !postgres_only("multi_node_listen") {
        return;
    }
    let api = TestServer::start_with(|s| s.role = hookd::config::Role::Api).await;
    let app = api.create_app("Merchant").await;
    let (status, body) = api
        .post(&format!("/api/v1/app/{app}/listen"), json!({}))
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("--role")),
        "{body}"
    );
    api.stop().await;
}
