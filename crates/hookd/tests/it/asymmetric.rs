//! Endpoints that sign with Ed25519 (`v1a`): the receiver holds only the public key, which can
//! verify a delivery but never forge one.

use std::time::Duration;

use hookd_receiver::Verifier;
use hookd_signing::Secret;
use serde_json::{json, Value};

use crate::harness::{contains, TestServer};
use crate::receiver::{Received, Receiver};

/// The seed 0x00..0x1f and its public key, as an independent implementation (Python's
/// `cryptography`) derives it.
const KNOWN_SIGNING_KEY: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KNOWN_PUBLIC_KEY: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

/// Verifies a delivery as a merchant's receiver would, with the keys it was given.
fn verifies(keys: &[&str], got: &Received) -> bool {
    let verifier = Verifier::new(keys).expect("keys");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    verifier
        .verify_parts(
            got.header("webhook-id"),
            got.header("webhook-timestamp"),
            got.header("webhook-signature"),
            &got.body,
            i64::try_from(now).expect("now"),
        )
        .is_ok()
}

async fn deliver_one(server: &TestServer, receiver: &Receiver, app: &str, n: usize) -> Received {
    server
        .send_message(
            app,
            json!({ "eventType": "payment.captured", "payload": { "n": n } }),
        )
        .await;
    receiver
        .wait_delivered(n, Duration::from_secs(10))
        .await
        .swap_remove(n - 1)
}

#[tokio::test]
async fn a_v1a_endpoint_signs_with_ed25519_and_shows_only_its_public_key() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    let endpoint = server
        .create_endpoint(
            &app,
            &receiver.url("/"),
            json!({ "signatureScheme": "v1a" }),
        )
        .await;
    assert_eq!(endpoint["signatureScheme"], "v1a");
    let ep = endpoint["id"].as_str().expect("id");
    let (status, secret) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(secret["signatureScheme"], "v1a");
    let public = secret["key"].as_str().expect("key").to_string();
    assert!(public.starts_with("whpk_"), "{public}");

    let got = deliver_one(&server, &receiver, &app, 1).await;
    let signature = got.header("webhook-signature");
    assert!(
        signature.starts_with("v1a,") && !signature.contains(' '),
        "{signature}"
    );
    assert!(verifies(&[&public], &got), "the public key verifies");
    // A v1 receiver, whatever its secret, finds no signature it can check.
    let other = Secret::generate().expose();
    assert!(!verifies(&[&other], &got));
    let id = got.header("webhook-id");
    let timestamp: i64 = got.header("webhook-timestamp").parse().expect("ts");
    assert!(!Secret::generate().verify_header(id, timestamp, &got.body, signature));
    // Another Ed25519 key does not verify it either.
    let stranger = hookd_signing::asymmetric::SigningKey::generate()
        .public_key()
        .expose();
    assert!(!verifies(&[&stranger], &got));

    // No answer of the API carries a signing key.
    for path in [
        format!("/api/v1/app/{app}/endpoint/{ep}"),
        format!("/api/v1/app/{app}/endpoint"),
        format!("/api/v1/app/{app}/endpoint/{ep}/secret"),
    ] {
        let (_, body) = server.get(&path).await;
        assert!(!body.to_string().contains("whsk_"), "{path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_signing_key_given_by_the_caller_is_sealed_and_only_its_public_half_shown() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Merchant").await;
    let endpoint = server
        .create_endpoint(
            &app,
            &receiver.url("/"),
            json!({ "secret": KNOWN_SIGNING_KEY }),
        )
        .await;
    assert_eq!(endpoint["signatureScheme"], "v1a");
    let ep = endpoint["id"].as_str().expect("id");
    assert_eq!(server.endpoint_secret(&app, ep).await, KNOWN_PUBLIC_KEY);
    let got = deliver_one(&server, &receiver, &app, 1).await;
    assert!(verifies(&[KNOWN_PUBLIC_KEY], &got));
    let bytes = server.database().endpoint_bytes().await;
    assert!(!bytes.is_empty());
    let seed = KNOWN_SIGNING_KEY.trim_start_matches("whsk_");
    assert!(
        !contains(&bytes, seed),
        "the signing key is stored in clear"
    );
    server.stop().await;
}

#[tokio::test]
async fn switching_to_v1a_keeps_the_old_secret_signing_through_the_grace_period() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, ep) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let old = server.endpoint_secret(&app, &ep).await;
    assert!(old.starts_with("whsec_"));
    let rotate = format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate");
    let (status, rotated) = server
        .post(&rotate, json!({ "signatureScheme": "v1a" }))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let public = rotated["key"].as_str().expect("key").to_string();
    assert!(public.starts_with("whpk_"), "{rotated}");
    assert_eq!(server.endpoint_secret(&app, &ep).await, public);

    let got = deliver_one(&server, &receiver, &app, 1).await;
    let entries: Vec<&str> = got.header("webhook-signature").split(' ').collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].starts_with("v1a,") && entries[1].starts_with("v1,"));
    // A receiver not yet moved verifies with its old secret; a moved one with the public key.
    assert!(verifies(&[&old], &got));
    assert!(verifies(&[&public], &got));

    // A rotation that names no scheme keeps the current one; a grace of 0 ends the replaced
    // key's at once, while the first secret keeps the rest of its own.
    let (status, again) = server
        .post(&rotate, json!({ "gracePeriodSeconds": 0 }))
        .await;
    assert_eq!(status, 200, "{again}");
    let newest = again["key"].as_str().expect("key").to_string();
    assert!(newest.starts_with("whpk_") && newest != public, "{again}");
    let got = deliver_one(&server, &receiver, &app, 2).await;
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&[&newest], &got));
    assert!(
        !verifies(&[&public], &got),
        "the replaced key's grace was 0"
    );
    assert!(verifies(&[&old], &got));
    server.stop().await;
}

#[tokio::test]
async fn keys_and_schemes_that_cannot_sign_are_refused() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let create = format!("/api/v1/app/{app}/endpoint");
    let url = "https://merchant.example/hook";
    let refused = |body: Value, field: &'static str| {
        let server = &server;
        let create = &create;
        async move {
            let (status, answer) = server.post(create, body.clone()).await;
            assert_eq!(status, 422, "{body} → {answer}");
            assert_eq!(answer["code"], "validation", "{answer}");
            assert_eq!(answer["detail"][0]["loc"][1], field, "{answer}");
        }
    };
    refused(
        json!({ "url": url, "signatureScheme": "v2" }),
        "signatureScheme",
    )
    .await;
    // A public key verifies but cannot sign.
    refused(json!({ "url": url, "secret": KNOWN_PUBLIC_KEY }), "secret").await;
    refused(
        json!({ "url": url, "secret": KNOWN_SIGNING_KEY, "signatureScheme": "v1" }),
        "signatureScheme",
    )
    .await;
    refused(json!({ "url": url, "secret": "whsk_AAAA" }), "secret").await;
    let (_, list) = server.get(&create).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    server.stop().await;
}
