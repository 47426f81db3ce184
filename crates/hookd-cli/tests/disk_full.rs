//! A full disk under a SQLite database: ingest answers 503 with Retry-After (never a 500, never
//! a 202 for something not stored), health says so, and once space is freed everything
//! accepted is delivered without a restart. The database sits on a small tmpfs the test mounts,
//! which needs root: elsewhere the test is skipped, under `CI=true` it fails.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{merchant, post, publish, serve, under_ci, Receiver};
use serde_json::json;

/// A tmpfs of `megabytes` mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !mounted.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (root is needed): {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk to the last byte; answers the filler file.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_with_503_and_loses_nothing_once_freed() {
    let disk = match SmallDisk::mount(16) {
        Ok(disk) => disk,
        Err(reason) if !under_ci() => {
            eprintln!("skipped: {reason}");
            return;
        }
        Err(reason) => panic!("{reason}"),
    };
    let db = disk.path().join("hookd.db");
    // The merchant's server is down while the disk is full: what was accepted must wait, and
    // be delivered once both are back.
    let (receiver, url) = Receiver::start(503).await;
    let schedule = vec!["200ms"; 200].join(",");
    let (hookd, base) = serve(
        &db,
        &[
            ("HOOKD_RETRY_SCHEDULE", schedule.as_str()),
            ("HOOKD_REQUEST_TIMEOUT", "2s"),
            ("HOOKD_CONNECT_TIMEOUT", "1s"),
            ("HOOKD_LEASE_DURATION", "5s"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let app = merchant(&client, &base, &url).await;
    let mut accepted: HashSet<String> = publish(&client, &base, &app, 20)
        .await
        .into_iter()
        .collect();

    let filler = disk.fill();
    let big = "x".repeat(32 * 1024);
    let mut refused = 0;
    for n in 0..400 {
        let body = json!({ "eventType": "payment.captured", "payload": { "n": n, "pad": big } });
        let (status, headers, answer) =
            post(&client, &format!("{base}/api/v1/app/{app}/msg"), &body).await;
        match status.as_u16() {
            202 => {
                accepted.insert(answer["id"].as_str().expect("id").to_string());
            }
            503 => {
                assert_eq!(answer["code"], "unavailable", "{answer}");
                assert!(
                    answer["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("full")),
                    "{answer}"
                );
                assert!(headers.contains_key("retry-after"), "{headers:?}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("a full disk answered {other}: {answer}"),
        }
    }
    assert!(refused >= 3, "the disk never filled up");
    let health = client
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(
        health.status().as_u16(),
        503,
        "health does not report the full disk"
    );

    // Space is freed and the merchant is back: everything accepted arrives, no restart.
    std::fs::remove_file(&filler).expect("free the disk");
    receiver.answer(204);
    let missing = receiver
        .missing_after(&accepted, Duration::from_secs(90))
        .await;
    let healthy = client
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .expect("health");
    let after = publish(&client, &base, &app, 1).await;
    drop(hookd);
    assert_eq!(missing, 0, "accepted messages were lost on the full disk");
    assert_eq!(
        healthy.status().as_u16(),
        204,
        "health stayed 503 once space was freed"
    );
    assert_eq!(after.len(), 1);
}
