//! Delivery controls: endpoint rate limits, fairness between endpoints, ordering keys.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn a_throttled_endpoint_waits_and_nobody_else_does() {
    let server = TestServer::start().await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    let throttled_app = server.create_app("Throttled").await;
    server
        .create_endpoint(&throttled_app, &slow.url("/"), json!({"throttleRate": 5}))
        .await;
    let (free_app, _) = server.merchant_with_endpoint(&fast.url("/")).await;

    let started = Instant::now();
    for i in 0..30 {
        for app in [&throttled_app, &free_app] {
            server
                .send_message(
                    app,
                    json!({"eventType": "payment.captured", "payload": {"n": i}}),
                )
                .await;
        }
    }
    fast.wait_delivered(30, Duration::from_secs(10)).await;
    let unthrottled_done = started.elapsed();
    slow.wait_delivered(30, Duration::from_secs(30)).await;
    let throttled_done = started.elapsed();
    // 30 deliveries at 5 per second start at least 29 × 200 ms apart from the first.
    assert!(
        throttled_done >= Duration::from_millis(5500),
        "{throttled_done:?}"
    );
    assert!(
        unthrottled_done < throttled_done / 2,
        "the other endpoint was slowed: {unthrottled_done:?} vs {throttled_done:?}"
    );
    // The throttle spaced the arrivals rather than bunching them at the end.
    let first_half_at_most = slow.delivered().len();
    assert_eq!(first_half_at_most, 30);
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_endpoint_does_not_delay_a_healthy_one() {
    let server = TestServer::start_with(|s| {
        s.request_timeout = Duration::from_secs(30);
        s.max_in_flight = 64;
        s.endpoint_max_in_flight = 8;
    })
    .await;
    let stalled = Receiver::scripted(|_, _| Reply::Stall).await;
    let healthy = Receiver::start().await;
    let (stalled_app, stalled_ep) = server.merchant_with_endpoint(&stalled.url("/")).await;
    let (healthy_app, _) = server.merchant_with_endpoint(&healthy.url("/")).await;
    for i in 0..200 {
        server
            .send_message(
                &stalled_app,
                json!({"eventType": "payment.created", "payload": {"n": i}}),
            )
            .await;
    }
    for i in 0..100 {
        server
            .send_message(
                &healthy_app,
                json!({"eventType": "payment.created", "payload": {"n": i}}),
            )
            .await;
    }
    healthy.wait_delivered(100, Duration::from_secs(20)).await;
    let stats = server
        .get(&format!(
            "/api/v1/app/{stalled_app}/endpoint/{stalled_ep}/stats"
        ))
        .await
        .1;
    assert_eq!(stats["success"], 0, "{stats}");
    assert!(stats["sending"].as_u64().expect("sending") <= 8, "{stats}");
    assert!(
        stats["pending"].as_u64().expect("pending") >= 192,
        "{stats}"
    );
    stalled.set_script(|_, _| Reply::Status(204));
    server.stop().await;
}

#[tokio::test]
async fn messages_of_one_key_arrive_in_order_and_others_are_not_held() {
    // Enough retries that no delivery is exhausted by the failing receiver.
    let server =
        TestServer::start_with(|s| s.retry.schedule = vec![Duration::from_millis(10); 12]).await;
    // Fails every third request.
    let receiver = Receiver::scripted(|n, _| {
        if n % 3 == 2 {
            Reply::Status(500)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..20 {
        for key in 0..5 {
            let key = format!("pay_{key}");
            let id = server
                .send_message(
                    &app,
                    json!({"eventType": "payment.updated", "orderingKey": key, "payload": {"round": round}}),
                )
                .await;
            sent.entry(key).or_default().push(id);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failing_keyed_message_holds_back_only_its_key() {
    let server =
        TestServer::start_with(|s| s.retry.schedule = vec![Duration::from_millis(100); 50]).await;
    // Fails the "stuck" message until the script changes.
    let receiver = Receiver::scripted_by_body(|_, _, body| {
        if String::from_utf8_lossy(body).contains("stuck") {
            Reply::Status(503)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/")).await;
    let send = |key: Option<&str>, payload: serde_json::Value| {
        let mut body = json!({"eventType": "payment.updated", "payload": payload});
        if let Some(key) = key {
            body["orderingKey"] = json!(key);
        }
        body
    };
    let first = server
        .send_message(&app, send(Some("pay_a"), json!({"stuck": 1})))
        .await;
    let second = server
        .send_message(&app, send(Some("pay_a"), json!({"n": 2})))
        .await;
    let other_key = server
        .send_message(&app, send(Some("pay_b"), json!({"n": 3})))
        .await;
    let unkeyed = server.send_message(&app, send(None, json!({"n": 4}))).await;
    let delivered = receiver.wait_delivered(2, Duration::from_secs(10)).await;
    let ids: Vec<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.contains(&other_key.as_str()) && ids.contains(&unkeyed.as_str()),
        "{ids:?}"
    );
    // While the first of pay_a keeps failing, the second waits (shown as pending).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!receiver
        .delivered()
        .iter()
        .any(|r| r.header("webhook-id") == second));
    let state = server
        .get(&format!("/api/v1/app/{app}/msg/{second}/endpoint"))
        .await
        .1;
    assert_eq!(state["data"][0]["statusText"], "pending", "{state}");

    receiver.set_script(|_, _| Reply::Status(204));
    let delivered = receiver.wait_delivered(4, Duration::from_secs(10)).await;
    let order: Vec<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
    let at = |id: &str| order.iter().position(|x| *x == id).expect("delivered");
    assert!(at(&first) < at(&second), "{order:?}");
    server.stop().await;
}
