//! `hookd certify` through the real binary, against three loopback receivers: one that
//! verifies as it should, one that trusts everything, and one that checks signatures but not
//! their age.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookd_receiver::Verifier;
use hookd_signing::Secret;

/// How a receiver judges a request.
#[derive(Clone, Copy)]
enum Receiver {
    /// hookd-receiver's `Verifier`: signature and timestamp.
    Careful,
    /// Accepts anything.
    Trusting,
    /// Verifies the signature at the request's own timestamp, so any age passes.
    Ageless,
}

async fn serve(kind: Receiver, secret: Secret) -> SocketAddr {
    let verifier = Verifier::from_secrets([secret]).expect("verifier");
    let handler = move |headers: HeaderMap, body: Bytes| {
        let verifier = verifier.clone();
        async move {
            let verdict = match kind {
                Receiver::Trusting => Ok(()),
                Receiver::Careful => verifier.verify(&headers, &body).map(drop),
                Receiver::Ageless => {
                    let at = headers
                        .get("webhook-timestamp")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    verifier.verify_at(&headers, &body, at).map(drop)
                }
            };
            match verdict {
                Ok(()) => StatusCode::NO_CONTENT,
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }
    };
    let app = axum::Router::new().route("/webhook", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn certify(kind: Receiver, json: bool) -> (bool, String) {
    let secret = Secret::generate();
    let addr = serve(kind, secret.clone()).await;
    let mut args = vec![
        "certify".to_string(),
        format!("http://{addr}/webhook"),
        "--secret".into(),
        secret.expose(),
        "--timeout".into(),
        "5s".into(),
        "--allow-destinations".into(),
        "127.0.0.0/8".into(),
    ];
    if json {
        args.push("--json".into());
    }
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(&args)
        .env_remove("HOOKD_CERTIFY_SECRET")
        .env_remove("HOOKD_ALLOW_DESTINATIONS")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("certify ends")
        .expect("run hookd certify");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 1),
        "{output:?} {stderr}"
    );
    (output.status.success(), stdout)
}

#[tokio::test]
async fn a_receiver_that_verifies_passes_every_check() {
    let (passed, out) = certify(Receiver::Careful, false).await;
    assert!(passed, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(out.matches("PASS").count(), 8, "{out}");
    // The replay and plain HTTP on loopback are information, not failures.
    assert!(out.contains("INFO  a replay of the first request"), "{out}");
    assert!(out.contains("webhook-id"), "{out}");
    assert!(
        out.contains("INFO  the endpoint is reached over TLS"),
        "{out}"
    );
}

#[tokio::test]
async fn a_receiver_that_trusts_everything_fails_every_refusal() {
    let (passed, out) = certify(Receiver::Trusting, false).await;
    assert!(!passed, "{out}");
    for check in [
        "a wrong signature is refused",
        "a signature made with another secret is refused",
        "a request without signature headers is refused",
        "a tampered body with the original signature is refused",
        "a timestamp 10 minutes old is refused",
        "a timestamp 10 minutes in the future is refused",
    ] {
        assert!(out.contains(&format!("FAIL  {check}")), "{check}: {out}");
    }
    assert!(out.contains("6 check(s) failed"), "{out}");
}

#[tokio::test]
async fn a_receiver_that_ignores_the_timestamp_is_told_exactly_that() {
    let (passed, out) = certify(Receiver::Ageless, true).await;
    assert!(!passed, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(report["passed"], serde_json::json!(false));
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        failed,
        vec![
            "a timestamp 10 minutes old is refused",
            "a timestamp 10 minutes in the future is refused"
        ]
    );
}

#[tokio::test]
async fn a_loopback_endpoint_is_refused_unless_allowed_like_deliveries() {
    let secret = Secret::generate();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/webhook",
        post(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { StatusCode::NO_CONTENT }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args([
            "certify",
            &format!("http://{addr}/webhook"),
            "--secret",
            &secret.expose(),
        ])
        .env_remove("HOOKD_CERTIFY_SECRET")
        .env_remove("HOOKD_ALLOW_DESTINATIONS")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("certify ends")
        .expect("run hookd certify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("--allow-destinations"), "{stderr}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "it was reached"
    );
}
