//! Endpoint secrets never sit in the database in clear.

use serde_json::json;

use crate::harness::{contains, TestServer};

#[tokio::test]
async fn the_database_holds_no_endpoint_secret_in_clear() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let endpoint = server
        .create_endpoint(
            &app,
            "https://merchant.example/hook",
            json!({ "secret": chosen }),
        )
        .await;
    let ep = endpoint["id"].as_str().expect("id");
    // Rotate twice so current and retiring secrets are both stored.
    for _ in 0..2 {
        let (status, _) = server
            .post(
                &format!("/api/v1/app/{app}/endpoint/{ep}/secret/rotate"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let current = server.endpoint_secret(&app, ep).await;
    // Read while running: SQLite's WAL holds the newest writes.
    let bytes = server.database().endpoint_bytes().await;
    server.stop().await;

    assert!(!bytes.is_empty());
    for secret in [chosen, current.as_str()] {
        let key_part = secret.trim_start_matches("whsec_");
        assert!(!contains(&bytes, key_part), "{secret} is stored in clear");
    }
    assert!(contains(&bytes, "v1."), "sealed secrets are stored");
}
