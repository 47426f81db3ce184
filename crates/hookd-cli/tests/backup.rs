//! `hookd backup` while hookd serves under load: starting hookd on the copy delivers everything
//! accepted before the copy began.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "backup-test-admin-token-of-some-length-0123456789";

/// A receiver that holds every request until it is told to answer, then answers 204 and
/// remembers the `webhook-id`s it answered.
#[derive(Clone, Default)]
struct Receiver {
    answering: Arc<AtomicBool>,
    answered: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    async fn serve(&self) -> String {
        let me = self.clone();
        let handler = move |headers: HeaderMap| {
            let me = me.clone();
            async move {
                while !me.answering.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                me.answered.lock().expect("answered").insert(id);
                StatusCode::NO_CONTENT
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn hookd(args: &[&str], db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookd"));
    command
        .args(args)
        .env_clear()
        .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HOOKD_ADMIN_TOKEN", TOKEN)
        .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("HOOKD_REQUEST_TIMEOUT", "120s")
        .env("HOOKD_LOG", "warn");
    command
}

/// `hookd serve` on `db`; answers the process and its base URL once it is healthy.
async fn serve(db: &Path) -> (Child, String) {
    let port = free_port();
    let mut child = hookd(&["serve"], db)
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start hookd");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let healthy = client.get(format!("{base}/api/v1/health")).send().await;
        if healthy.is_ok_and(|r| r.status().is_success()) {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hookd did not become healthy on {db:?}");
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

/// Publishes `count` messages to `app` and answers their ids.
async fn publish(client: &reqwest::Client, base: &str, app: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let body = json!({ "eventType": "payment.captured", "payload": { "n": n } });
        let message = post(client, format!("{base}/api/v1/app/{app}/msg"), body).await;
        ids.push(message["id"].as_str().expect("id").to_string());
    }
    ids
}

#[tokio::test]
async fn a_copy_taken_under_load_delivers_everything_accepted_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let live = dir.path().join("live.db");
    let copy = dir.path().join("copy.db");
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let (mut first, base) = serve(&live).await;
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{base}/api/v1/app"),
        json!({"name": "Shop"}),
    )
    .await;
    let app = app["id"].as_str().expect("app").to_string();
    post(
        &client,
        format!("{base}/api/v1/app/{app}/endpoint"),
        json!({ "url": url }),
    )
    .await;
    // Accepted before the copy: held at the receiver (in flight) or waiting their turn.
    let before = publish(&client, &base, &app, 150).await;

    // The copy, while publishers keep writing.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, base, app, stop) = (client.clone(), base.clone(), app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) {
                publish(&client, &base, &app, 10).await;
                sent += 10;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let copy_arg = copy.to_str().expect("utf-8").to_string();
    let backup = tokio::task::spawn_blocking({
        let live = live.clone();
        move || {
            hookd(&["backup", &copy_arg], &live)
                .output()
                .expect("backup")
        }
    })
    .await
    .expect("backup ran");
    stop.store(true, Ordering::SeqCst);
    let during = load.await.expect("load");
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(backup.status.success(), "{backup:?}");
    assert!(stdout.contains("live.db.key"), "{stdout}");
    assert!(during > 0, "no load while copying");

    // The server dies; the copy is restored beside its key and served.
    first.kill().expect("kill");
    first.wait().expect("reaped");
    std::fs::copy(
        dir.path().join("live.db.key"),
        dir.path().join("copy.db.key"),
    )
    .expect("key");
    receiver.answering.store(true, Ordering::SeqCst);
    let (mut second, _) = serve(&copy).await;
    let wanted: HashSet<String> = before.into_iter().collect();
    let mut missing = wanted.len();
    for _ in 0..600 {
        let answered = receiver.answered.lock().expect("answered").clone();
        missing = wanted.difference(&answered).count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.kill().expect("kill");
    let _ = second.wait();
    assert_eq!(
        missing, 0,
        "messages accepted before the copy were not delivered from it"
    );
}

#[test]
fn a_backup_never_overwrites_and_postgres_is_pointed_elsewhere() {
    let dir = tempfile::tempdir().expect("dir");
    let live = dir.path().join("live.db");
    let migrated = hookd(&["migrate"], &live).output().expect("migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, b"precious").expect("write");
    let output = hookd(&["backup", taken.to_str().expect("utf-8")], &live)
        .output()
        .expect("backup");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&taken).expect("read"), b"precious");
    let output = hookd(&["backup", "elsewhere.db"], &live)
        .env(
            "HOOKD_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/none",
        )
        .env(
            "HOOKD_MAIN_SECRET",
            "a main secret that is long enough for hookd",
        )
        .output()
        .expect("backup");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
}
