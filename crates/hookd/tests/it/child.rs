//! hookd as a child process of the test, so it can be killed for real.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{TestDatabase, ADMIN_TOKEN};

/// The `hookd` binary: `HOOKD_BIN` when set, otherwise `target/<profile>/hookd` beside this
/// suite's own executable.
///
/// The binary is built by the `hookd-cli` package, which depends on this library, so Cargo
/// cannot give this suite `CARGO_BIN_EXE_hookd` (it exists only for a package's own
/// binaries). `cargo test --workspace` and `cargo build` build it; `cargo test -p hookd` alone
/// runs whatever binary the last build left there.
pub fn hookd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HOOKD_BIN") {
        return path.into();
    }
    // This suite runs as target/<profile>/deps/it-<hash>; binaries sit in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("hookd");
    assert!(
        binary.exists(),
        "{} not found: build it first (`cargo build -p hookd-cli`) or set HOOKD_BIN",
        binary.display()
    );
    binary
}

/// A `hookd serve` process on a test database.
pub struct ChildServer {
    child: Child,
    pub base: String,
}

impl ChildServer {
    /// Starts `hookd serve` on `db` with the settings the durability tests share, plus `extra`
    /// variables, appending its log to `log`; waits until it is healthy.
    pub async fn start(db: &TestDatabase, log: &Path, extra: &[(&str, &str)]) -> Self {
        let server = Self::spawn(db, log, extra);
        server.wait_healthy().await;
        server
    }

    /// Starts `hookd serve` without waiting for it.
    pub fn spawn(db: &TestDatabase, log: &Path, extra: &[(&str, &str)]) -> Self {
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
        let child = Command::new(hookd_binary())
            .arg("serve")
            .envs(db.env())
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("HOOKD_RETRY_SCHEDULE", "50ms,100ms,200ms,500ms,1s")
            .env("HOOKD_REQUEST_TIMEOUT", "60s")
            .env("HOOKD_MAX_IN_FLIGHT", "64")
            .env("HOOKD_POLL_INTERVAL", "100ms")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hookd");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn wait_healthy(&self) {
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

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
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

/// POSTs with the admin token; answers the JSON of a 2xx, `None` for anything else (an error
/// status, a refused connection).
pub async fn try_post(client: &reqwest::Client, url: String, body: Value) -> Option<Value> {
    let response = client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The distinct `webhook-id`s a receiver accepted, and how many deliveries repeated one.
pub fn delivered_ids(
    receiver: &crate::receiver::Receiver,
) -> (std::collections::HashSet<String>, usize) {
    let delivered = receiver.delivered();
    let ids: std::collections::HashSet<String> = delivered
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    let duplicates = delivered.len() - ids.len();
    (ids, duplicates)
}

/// POSTs with the admin token and answers the JSON, panicking unless the answer is a 2xx.
pub async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
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
