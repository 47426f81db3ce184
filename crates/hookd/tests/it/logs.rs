//! No endpoint secret, token or signature appears in hookd's logs or error bodies.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::Receiver;

/// Everything logged by the test process, at the most verbose levels an operator could pick.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,hookd=trace,tower_http=trace",
            ))
            .with_ansi(false)
            .with_writer(move || SharedWriter(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        logs
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_tokens_and_signatures_stay_out_of_logs_and_errors() {
    let logs = captured_logs();
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    let chosen = "whsec_Zm9yIHRoZSBsb2dzIHRlc3Qgb25seSwgMzIgYnl0ZXM=";
    let endpoint = server
        .create_endpoint(&app, &receiver.url("/hook"), json!({"secret": chosen}))
        .await;
    let ep = endpoint["id"].as_str().expect("id");
    let (_, rotated) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"),
            json!({}),
        )
        .await;
    let new_secret = rotated["key"].as_str().expect("key").to_string();
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let app_token = access["token"].as_str().expect("token").to_string();
    server
        .send_message(
            &app,
            json!({"eventType": "payment.captured", "payload": {"amount": 1}}),
        )
        .await;
    let delivered = receiver.wait_delivered(1, Duration::from_secs(5)).await;
    let signature_header = delivered[0].header("webhook-signature").to_string();

    // Error answers never echo what was sent as a credential or a secret.
    let wrong_token = "hookd_org_this-token-is-wrong-and-must-not-be-echoed";
    let (status, body) = server
        .call_as(wrong_token, Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, 401);
    let (status, bad_secret) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://m.example/", "secret": "whsec_not-base64-but-secret!!"}),
        )
        .await;
    assert_eq!(status, 422);
    for answer in [body.to_string(), bad_secret.to_string()] {
        assert!(!answer.contains("this-token-is-wrong"), "{answer}");
        assert!(!answer.contains("not-base64-but-secret"), "{answer}");
    }
    server.stop().await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(text.contains("hookd is listening"), "the capture works");
    let mut needles = vec![
        chosen.trim_start_matches("whsec_").to_string(),
        new_secret.trim_start_matches("whsec_").to_string(),
        crate::harness::ADMIN_TOKEN.to_string(),
        app_token.trim_start_matches("hookd_app_").to_string(),
        "this-token-is-wrong".to_string(),
    ];
    for signature in signature_header.split(' ') {
        needles.push(signature.trim_start_matches("v1,").to_string());
    }
    for needle in needles {
        assert!(!text.contains(&needle), "{needle} appears in the logs");
    }
}
