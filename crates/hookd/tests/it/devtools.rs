//! The developer tools through the real binary: `--seed payments`, `hookd trigger` and
//! `hookd listen`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::harness::{TestServer, ADMIN_TOKEN};
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn the_payment_catalog_is_seeded_and_trigger_posts_a_schema_valid_example() {
    let server = TestServer::start_with(|s| s.seed = Some(hookd::config::Seed::Payments)).await;
    let catalog = server.get("/api/v1/event-type").await.1;
    let names: Vec<&str> = catalog["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for expected in [
        "payment.authorized",
        "payment.captured",
        "payment.created",
        "payment.failed",
        "payment.refunded",
        "payment.updated",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    server
        .create_endpoint(
            &app,
            &receiver.url("/"),
            json!({"filterTypes": ["payment.failed"]}),
        )
        .await;

    let output = tokio::process::Command::new(crate::child::hookd_binary())
        .args([
            "trigger",
            "payment.failed",
            "--url",
            &server.base,
            "--token",
            ADMIN_TOKEN,
        ])
        .output()
        .await
        .expect("run hookd trigger");
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("sent payment.failed"));

    let got = &receiver.wait_delivered(1, Duration::from_secs(5)).await[0];
    let payload: serde_json::Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(payload["event"], "payment.failed");
    assert_eq!(payload["data"]["status"], "failed");
    let event_type = server.get("/api/v1/event-type/payment.failed").await.1;
    assert_eq!(
        hookd::catalog::validate(&event_type["schemas"], &payload),
        Ok(())
    );

    let unknown = tokio::process::Command::new(crate::child::hookd_binary())
        .args([
            "trigger",
            "payment.teleported",
            "--url",
            &server.base,
            "--token",
            ADMIN_TOKEN,
        ])
        .output()
        .await
        .expect("run hookd trigger");
    assert!(!unknown.status.success());
    server.stop().await;
}

#[tokio::test]
async fn listen_relays_deliveries_to_a_local_url_and_reports_the_answer() {
    let server = TestServer::start().await;
    let local = Receiver::scripted(|_, _| Reply::Status(202)).await;
    let app = server.create_app("Merchant").await;
    let mut cli = tokio::process::Command::new(crate::child::hookd_binary())
        .args([
            "listen",
            "--forward-to",
            &local.url("/webhook"),
            "--app",
            &app,
            "--url",
            &server.base,
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

    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {"amount": 7}}),
        )
        .await;
    let got = &local.wait_delivered(1, Duration::from_secs(10)).await[0];
    assert_eq!(got.path, "/webhook");
    assert_eq!(got.header("webhook-id"), msg);
    assert_eq!(&got.body[..], br#"{"amount":7}"#);
    assert!(!got.header("webhook-signature").is_empty());
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/msg/{msg}"),
            Duration::from_secs(5),
            |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    assert_eq!(attempts["data"][0]["responseStatusCode"], 202);
    assert_eq!(attempts["data"][0]["status"], 0);
    let relayed = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("a line per delivery")
        .expect("read")
        .expect("line");
    assert!(
        relayed.contains(&msg) && relayed.contains("202"),
        "{relayed}"
    );
    let _ = cli.kill().await;
    server.stop().await;
}
