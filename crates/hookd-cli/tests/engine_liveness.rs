//! Engine liveness through the binary (docs/OPERATIONS.md, "Health"): when the delivery engine's
//! dispatcher or recorder dies, hookd stops accepting work it would never deliver and exits
//! with status 1, so that its supervisor starts a healthy process. The tasks are made to die by
//! `HOOKD_DEBUG_ENGINE_FAULT`, which only debug builds read; the test exists in debug builds
//! only, as CI runs them.
#![cfg(debug_assertions)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{free_port, hookd};

#[tokio::test]
async fn a_dead_dispatcher_or_recorder_stops_hookd_with_status_1() {
    for task in ["dispatcher", "recorder"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = hookd(&["serve"], &dir.path().join("hookd.db"))
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKD_DEBUG_ENGINE_FAULT", format!("{task}:3000"))
            .env("HOOKD_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hookd");
        let client = reqwest::Client::new();

        // Healthy first: the fault is 3 s away.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = client.get(format!("{base}/api/v1/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "hookd never became healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Then the task dies, and hookd goes: exit status 1, the cause in its log.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hookd kept running with a dead {task}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let output = child.wait_with_output().expect("output");
        let log = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status.code(), Some(1), "a dead {task}: {status:?}\n{log}");
        assert!(
            log.contains(&format!(
                "the delivery engine's {task} panicked; hookd stops"
            )),
            "the log names the dead task: {log}"
        );
        assert!(
            client
                .get(format!("{base}/api/v1/health"))
                .send()
                .await
                .is_err(),
            "nothing answers on the port once hookd has gone"
        );
    }
}
