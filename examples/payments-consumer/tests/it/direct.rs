//! The consumer driven with requests signed here, as hookd would sign them: duplicates, events
//! out of order, and forged or malformed requests.

use std::time::{SystemTime, UNIX_EPOCH};

use hookd_receiver::Secret;
use reqwest::StatusCode;

use crate::{event, spawn_consumer, Consumer};

fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// POSTs `body` to the consumer at `url` as delivery `webhook_id`, signed with `secret` at
/// `timestamp`, as hookd does.
async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    webhook_id: &str,
    body: &str,
    timestamp: i64,
) -> StatusCode {
    client
        .post(format!("{url}/webhooks"))
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            secret.sign(webhook_id, timestamp, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .expect("consumer answers")
        .status()
}

impl Consumer {
    async fn deliver_at(
        &self,
        secret: &Secret,
        webhook_id: &str,
        body: &str,
        timestamp: i64,
    ) -> StatusCode {
        post(&self.client, &self.url, secret, webhook_id, body, timestamp).await
    }

    async fn deliver(&self, secret: &Secret, webhook_id: &str, body: &str) -> StatusCode {
        self.deliver_at(secret, webhook_id, body, now()).await
    }
}

/// The issue's scenario in one run: duplicates, an out-of-order `payment.updated` and a badly
/// signed request. Final states are right, the duplicate had no second effect, the bad request
/// got a 4xx and changed nothing.
#[tokio::test]
async fn duplicates_late_events_and_forgeries_leave_the_right_state() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let ok = StatusCode::NO_CONTENT;

    // pay_1 is captured; a late `payment.updated` from before the capture arrives after it.
    let created = event(
        "payment.created",
        "pay_1",
        "created",
        "2026-11-29T10:00:00Z",
    );
    let captured = event(
        "payment.captured",
        "pay_1",
        "captured",
        "2026-11-29T10:00:05Z",
    );
    let late = event(
        "payment.updated",
        "pay_1",
        "authorized",
        "2026-11-29T10:00:03Z",
    );
    assert_eq!(
        consumer.deliver(&secret, "msg_created_1", &created).await,
        ok
    );
    assert_eq!(
        consumer.deliver(&secret, "msg_captured_1", &captured).await,
        ok
    );
    assert_eq!(consumer.deliver(&secret, "msg_updated_1", &late).await, ok);
    // The capture again, as a retry would bring it.
    assert_eq!(
        consumer.deliver(&secret, "msg_captured_1", &captured).await,
        ok
    );

    // pay_2 fails; the failure is delivered twice.
    let failed = event("payment.failed", "pay_2", "failed", "2026-11-29T10:01:00Z");
    assert_eq!(consumer.deliver(&secret, "msg_failed_2", &failed).await, ok);
    assert_eq!(consumer.deliver(&secret, "msg_failed_2", &failed).await, ok);

    // A forged refund of pay_1: signed with another secret.
    let forged = event(
        "payment.refunded",
        "pay_1",
        "refunded",
        "2026-11-29T11:00:00Z",
    );
    let status = consumer
        .deliver(&Secret::generate(), "msg_forged", &forged)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let pay_1 = consumer.payment("pay_1").await.expect("pay_1 is known");
    assert_eq!(pay_1["status"], "captured");
    assert_eq!(pay_1["updatedAtEvent"], "2026-11-29T10:00:05Z");
    assert_eq!(pay_1["membershipActive"], true);
    let pay_2 = consumer.payment("pay_2").await.expect("pay_2 is known");
    assert_eq!(pay_2["status"], "failed");
    assert_eq!(pay_2["alerts"], 1, "the duplicate raised no second alert");
    assert_eq!(pay_2["membershipActive"], serde_json::Value::Null);
    // Four distinct deliveries handled; the duplicates and the forgery left no row.
    assert_eq!(consumer.count("webhook_inbox").await, 4);
    assert_eq!(consumer.count("alerts").await, 1);
}

#[tokio::test]
async fn a_late_capture_does_not_undo_a_refund() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let refunded = event(
        "payment.refunded",
        "pay_3",
        "refunded",
        "2026-11-29T12:00:00Z",
    );
    let captured = event(
        "payment.captured",
        "pay_3",
        "captured",
        "2026-11-29T11:00:00Z",
    );
    assert_eq!(
        consumer.deliver(&secret, "msg_refunded", &refunded).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        consumer.deliver(&secret, "msg_captured", &captured).await,
        StatusCode::NO_CONTENT
    );
    let pay_3 = consumer.payment("pay_3").await.expect("pay_3 is known");
    assert_eq!(pay_3["status"], "refunded");
    assert_eq!(
        pay_3["membershipActive"], false,
        "the stale capture must not activate a refunded order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_have_one_effect() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let failed = event("payment.failed", "pay_4", "failed", "2026-11-29T10:00:00Z");
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, secret, failed) = (
            consumer.client.clone(),
            consumer.url.clone(),
            secret.clone(),
            failed.clone(),
        );
        deliveries.spawn(async move {
            post(&client, &url, &secret, "msg_failed_4", &failed, now()).await
        });
    }
    while let Some(status) = deliveries.join_next().await {
        assert_eq!(status.expect("delivery task"), StatusCode::NO_CONTENT);
    }
    assert_eq!(consumer.count("alerts").await, 1);
    assert_eq!(consumer.count("webhook_inbox").await, 1);
}

#[tokio::test]
async fn malformed_stale_and_tampered_requests_get_4xx_and_change_nothing() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let body = event(
        "payment.captured",
        "pay_5",
        "captured",
        "2026-11-29T10:00:00Z",
    );
    let webhooks = format!("{}/webhooks", consumer.url);

    // No signature headers at all.
    let bare = consumer
        .client
        .post(&webhooks)
        .body(body.clone())
        .send()
        .await;
    assert_eq!(bare.expect("answer").status(), StatusCode::BAD_REQUEST);
    // Signed ten minutes ago: a replay.
    let stale = consumer
        .deliver_at(&secret, "msg_5", &body, now() - 600)
        .await;
    assert_eq!(stale, StatusCode::UNAUTHORIZED);
    // Signed, then altered on the way (the amount).
    let ts = now();
    let tampered = consumer
        .client
        .post(&webhooks)
        .header("webhook-id", "msg_5")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            secret.sign("msg_5", ts, body.as_bytes()),
        )
        .body(body.replace("4999", "1"))
        .send()
        .await;
    assert_eq!(tampered.expect("answer").status(), StatusCode::UNAUTHORIZED);
    // Authentic, but a `payment.updated` without a status: the sender's bug, told as a 400.
    let no_status = serde_json::json!({
        "event": "payment.updated", "timestamp": "2026-11-29T10:00:00Z",
        "data": {"paymentId": "pay_5", "amount": 1, "currency": "EUR", "orderId": "ord_5"}
    })
    .to_string();
    assert_eq!(
        consumer.deliver(&secret, "msg_6", &no_status).await,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(consumer.payment("pay_5").await, None);
    assert_eq!(consumer.count("webhook_inbox").await, 0);
}

#[tokio::test]
async fn events_the_app_does_not_handle_are_acknowledged() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let other = r#"{"event": "invoice.paid", "timestamp": "2026-11-29T10:00:00Z", "data": {}}"#;
    assert_eq!(
        consumer.deliver(&secret, "msg_7", other).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(consumer.count("webhook_inbox").await, 0);
}

#[tokio::test]
async fn a_certification_request_is_acknowledged_and_applies_nothing() {
    let secret = Secret::generate();
    let consumer = spawn_consumer(&secret).await;
    let body = event(
        "payment.captured",
        "pay_cert",
        "captured",
        "2026-11-29T10:00:00Z",
    );
    let timestamp = now();
    let send = |certify: bool| {
        let mut request = consumer
            .client
            .post(format!("{}/webhooks", consumer.url))
            .header("content-type", "application/json")
            .header("webhook-id", "cert_1_valid")
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                secret.sign("cert_1_valid", timestamp, body.as_bytes()),
            )
            .body(body.clone());
        if certify {
            request = request.header("hookd-certify", "1");
        }
        async move { request.send().await.expect("answer").status() }
    };
    assert_eq!(send(true).await, StatusCode::NO_CONTENT);
    assert_eq!(consumer.payment("pay_cert").await, None);
    assert_eq!(consumer.count("webhook_inbox").await, 0);
    // Unsigned, the header buys nothing: refused as any forgery.
    let forged = consumer
        .client
        .post(format!("{}/webhooks", consumer.url))
        .header("content-type", "application/json")
        .header("hookd-certify", "1")
        .body(body.clone())
        .send()
        .await
        .expect("answer")
        .status();
    assert!(forged.is_client_error(), "{forged}");
    // The same request without the header is an event like any other.
    assert_eq!(send(false).await, StatusCode::NO_CONTENT);
    assert!(consumer.payment("pay_cert").await.is_some());
}
