//! Nothing accepted is lost: hookd killed with SIGKILL mid-delivery delivers everything after a
//! restart on the same file.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::harness::ADMIN_TOKEN;
use crate::receiver::{Receiver, Reply};

/// hookd as a child process of the test, so it can be killed for real.
struct ChildServer {
    child: Child,
    base: String,
}

impl ChildServer {
    async fn start(db: &Path, log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hookd"))
            .arg("serve")
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("HOOKD_RETRY_SCHEDULE", "50ms,100ms,200ms,500ms,1s")
            .env("HOOKD_REQUEST_TIMEOUT", "60s")
            .env("HOOKD_MAX_IN_FLIGHT", "64")
            .env("HOOKD_POLL_INTERVAL", "100ms")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hookd");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(response) = client
                .get(format!("{}/api/v1/health", self.base))
                .send()
                .await
            {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hookd did not become healthy");
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
        self.child.wait().expect("reap");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_accepted_messages_survive_sigkill() {
    const MESSAGES: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hookd.db");
    let log = dir.path().join("hookd.log");
    // The receiver holds every request open: nothing is delivered before the kill.
    let receiver = Receiver::scripted(|_, _| Reply::Stall).await;
    let server = ChildServer::start(&db, &log).await;
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
    let restarted = ChildServer::start(&db, &log).await;

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
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("hookd.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("serve")
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
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
