//! Nothing accepted is lost: hookd killed with SIGKILL mid-delivery delivers everything after a
//! restart on the same file.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::child::{post, ChildServer};
use crate::harness::TestDatabase;
use crate::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_accepted_messages_survive_sigkill() {
    const MESSAGES: usize = 1000;
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    // The receiver holds every request open: nothing is delivered before the kill.
    let receiver = Receiver::scripted(|_, _| Reply::Stall).await;
    // Short leases: on PostgreSQL the dead node's leases must expire before another node may
    // claim them (SQLite releases them at start, as only one process uses the file).
    let leases = [("HOOKD_LEASE_DURATION", "2s")];
    let server = ChildServer::start(&db, &log, &leases).await;
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", server.base),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", server.base),
        json!({"url": receiver.url("/hook")}),
    )
    .await;

    let limit = Arc::new(Semaphore::new(16));
    let mut posts = Vec::new();
    for i in 0..MESSAGES {
        let (client, limit) = (client.clone(), Arc::clone(&limit));
        let url = format!("{}/api/v1/app/{app_id}/msg", server.base);
        posts.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("permit");
            let body = json!({"eventType": "payment.captured", "payload": {"n": i}});
            post(&client, url, body).await["id"]
                .as_str()
                .expect("id")
                .to_string()
        }));
    }
    let mut accepted = HashSet::new();
    for handle in posts {
        accepted.insert(handle.await.expect("post task"));
    }
    assert_eq!(accepted.len(), MESSAGES);
    assert!(receiver.delivered().is_empty());

    server.kill();
    receiver.set_script(|_, _| Reply::Status(204));
    let restarted = ChildServer::start(&db, &log, &leases).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> = receiver
            .delivered()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted messages were never delivered; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(restarted);
}

#[tokio::test]
async fn a_first_start_prints_an_org_token_once() {
    let db = TestDatabase::create().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(crate::child::hookd_binary())
        .arg("serve")
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .envs(db.env())
        .env_remove("HOOKD_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let token = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(token) = line.trim().strip_prefix("hookd_org_") {
                return format!("hookd_org_{token}");
            }
        }
        panic!("no token printed")
    })
    .await
    .expect("token in time");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/app");
    let mut status = 0;
    for _ in 0..100 {
        if let Ok(response) = client.get(&url).bearer_auth(&token).send().await {
            status = response.status().as_u16();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}
