//! `hookd backup` while hookd serves under load: starting hookd on the copy delivers everything
//! accepted before the copy began.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{hookd, merchant, publish, serve, Receiver};

#[tokio::test]
async fn a_copy_taken_under_load_delivers_everything_accepted_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let live = dir.path().join("live.db");
    let copy = dir.path().join("copy.db");
    // Held: what is accepted stays in flight or waiting while the copy is taken.
    let (receiver, url) = Receiver::start(0).await;
    let long_timeout = [("HOOKD_REQUEST_TIMEOUT", "120s")];
    let (first, base) = serve(&live, &long_timeout).await;
    let client = reqwest::Client::new();
    let app = merchant(&client, &base, &url).await;
    let before = publish(&client, &base, &app, 150).await;

    // The copy, while publishers keep writing.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, base, app, stop) = (client.clone(), base.clone(), app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while !common::stopped(&stop) {
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
    drop(first);
    std::fs::copy(
        dir.path().join("live.db.key"),
        dir.path().join("copy.db.key"),
    )
    .expect("key");
    receiver.answer(204);
    let (second, _) = serve(&copy, &long_timeout).await;
    let wanted: HashSet<String> = before.into_iter().collect();
    let missing = receiver
        .missing_after(&wanted, Duration::from_secs(60))
        .await;
    drop(second);
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
