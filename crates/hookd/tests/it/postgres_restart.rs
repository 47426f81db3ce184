//! PostgreSQL itself restarting mid-run (a crash: `pg_ctl stop -m immediate`) loses nothing,
//! and the nodes recover on their own, without being restarted.
//!
//! The test runs a private PostgreSQL (`initdb` and `pg_ctl` on its own port and data folder),
//! never the machine's shared server.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::child::{delivered_ids, post, try_post, ChildServer};
use crate::harness::{postgres_only, report, unavailable, TestDatabase};
use crate::receiver::Receiver;

/// A PostgreSQL server of the test's own, stopped and deleted when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    data: String,
    port: u16,
    /// Root may not run PostgreSQL: commands then run as the `postgres` user.
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates and starts the server, or says why it cannot be.
    fn start() -> Result<Self, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "no PostgreSQL binaries under /usr/lib/postgresql".to_string())?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
            .max()
            .ok_or("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")?;
        let root = run(Command::new("id").arg("-u"))
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
            .unwrap_or(false);
        let mut mktemp = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "mktemp", "-d"]);
            c
        } else {
            let mut c = Command::new("mktemp");
            c.arg("-d");
            c
        };
        let out = run(&mut mktemp)?;
        let data = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let server = Self {
            bin,
            data,
            port,
            as_postgres: root,
        };
        server.tool(
            "initdb",
            &[
                "-D",
                &server.data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--locale=C",
                "-E",
                "UTF8",
            ],
        )?;
        server.up()?;
        Ok(server)
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port, self.data
        );
        let log = format!("{}/server.log", self.data);
        self.tool(
            "pg_ctl",
            &["-D", &self.data, "-o", &options, "-l", &log, "-w", "start"],
        )
        .map(|_| ())
    }

    /// Stops the server the way a crash would: no checkpoint, recovery from the WAL at start.
    fn crash(&self) -> Result<(), String> {
        self.tool(
            "pg_ctl",
            &["-D", &self.data, "-m", "immediate", "-w", "stop"],
        )
        .map(|_| ())
    }

    fn tool(&self, name: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir("/tmp");
        run(&mut command)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.crash();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn run(command: &mut Command) -> Result<Output, String> {
    let out = command
        .output()
        .map_err(|e| format!("{command:?} did not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

const MESSAGES: usize = 1200;
const PUBLISHERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_nothing_and_the_nodes_recover() {
    if !postgres_only("a_postgres_restart_mid_run_loses_nothing_and_the_nodes_recover") {
        return;
    }
    let postgres = match PrivatePostgres::start() {
        Ok(postgres) => postgres,
        Err(reason) => {
            unavailable(
                "a_postgres_restart_mid_run_loses_nothing_and_the_nodes_recover",
                &reason,
            );
            return;
        }
    };
    let db = TestDatabase::postgres_on(&postgres.admin_url()).await;
    let log = db.dir().join("hookd.log");
    let receiver = Receiver::start().await;
    let settings = [
        ("HOOKD_LEASE_DURATION", "3s"),
        ("HOOKD_REQUEST_TIMEOUT", "1s"),
        // Requests during the outage fail fast instead of queueing for a connection.
        ("HOOKD_DATABASE_ACQUIRE_TIMEOUT", "1s"),
    ];
    let mut nodes = vec![
        ChildServer::start(&db, &log, &settings).await,
        ChildServer::start(&db, &log, &settings).await,
    ];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let app = post(
        &client,
        format!("{}/api/v1/app", bases[0]),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", bases[1]),
        json!({"url": receiver.url("/hook")}),
    )
    .await;

    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let accepted_after_restart = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (client, bases, app_id) = (client.clone(), bases.clone(), app_id.clone());
        let (accepted, next, failed, restarted, after) = (
            Arc::clone(&accepted),
            Arc::clone(&next),
            Arc::clone(&failed),
            Arc::clone(&restarted),
            Arc::clone(&accepted_after_restart),
        );
        publishers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= MESSAGES {
                    break;
                }
                let url = format!("{}/api/v1/app/{app_id}/msg", bases[n % bases.len()]);
                let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
                match try_post(&client, url, body).await {
                    Some(message) => {
                        let id = message["id"].as_str().expect("id").to_string();
                        accepted.lock().expect("accepted").insert(id);
                        if restarted.load(Ordering::Relaxed) {
                            after.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        // Refused while the database is down: not accepted, not owed.
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }

    while accepted.lock().expect("accepted").len() < MESSAGES / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    postgres.crash().expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.up().expect("start PostgreSQL again");
    restarted.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let accepted = accepted.lock().expect("accepted").clone();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (lost, duplicates) = loop {
        let (delivered, duplicates) = delivered_ids(&receiver);
        let lost = accepted.difference(&delivered).count();
        if lost == 0 || tokio::time::Instant::now() >= deadline {
            break (lost, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    report(&format!(
        "postgres restart: {} accepted ({} after the restart), {} refused during the outage, lost {lost}, duplicates {duplicates}",
        accepted.len(),
        accepted_after_restart.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    ));
    assert_eq!(
        lost,
        0,
        "accepted messages never delivered; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        accepted_after_restart.load(Ordering::Relaxed) > 0,
        "no message was accepted after the restart"
    );
    // The same processes serve again: healthy, and delivering what arrives now.
    for node in &mut nodes {
        assert!(node.is_running(), "a node stopped");
        node.wait_healthy().await;
    }
    let before = receiver.delivered().len();
    for base in &bases {
        post(
            &client,
            format!("{base}/api/v1/app/{app_id}/msg"),
            json!({"eventType": "payment.captured", "payload": {"after": true}}),
        )
        .await;
    }
    receiver
        .wait_delivered(before + bases.len(), Duration::from_secs(10))
        .await;
    drop(db); // Before the server it lives on.
}
