//! Delivery controls: endpoint rate limits, fairness between endpoints, ordering keys.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn a_throttled_endpoint_waits_and_nobody_else_does() {
    const RATE: u32 = 5;
    const MESSAGES: usize = 30;
    // The throttle's promise: deliveries to the endpoint start at least this far apart.
    let gap = Duration::from_millis(1000 / u64::from(RATE));
    let server = TestServer::start().await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    let throttled_app = server.create_app("Throttled").await;
    server
        .create_endpoint(
            &throttled_app,
            &slow.url("/"),
            json!({"throttleRate": RATE}),
        )
        .await;
    let (free_app, _) = server.merchant_with_endpoint(&fast.url("/")).await;

    let started = Instant::now();
    for i in 0..MESSAGES {
        for app in [&throttled_app, &free_app] {
            server
                .send_message(
                    app,
                    json!({"eventType": "payment.captured", "payload": {"n": i}}),
                )
                .await;
        }
    }
    fast.wait_delivered(MESSAGES, Duration::from_secs(30)).await;
    slow.wait_delivered(MESSAGES, Duration::from_secs(60)).await;
    let mut throttled: Vec<Instant> = slow.delivered().iter().map(|r| r.arrived).collect();
    throttled.sort();

    // No burst, measured against the throttle's own clock: the first delivery cannot start
    // before the first message was sent, so the k-th cannot arrive before k gaps after that.
    // A busy machine only makes arrivals later, so this cannot fail for want of speed; a
    // burst of even two deliveries at once fails it. (The throttle plans in whole
    // milliseconds of the wall clock: a few are allowed for that rounding.)
    let rounding = Duration::from_millis(5);
    for (k, arrived) in throttled.iter().enumerate() {
        let earliest = (gap * u32::try_from(k).expect("count")).saturating_sub(rounding);
        assert!(
            arrived.duration_since(started) >= earliest,
            "delivery {k} arrived {:?} after the first message, before {earliest:?}",
            arrived.duration_since(started)
        );
    }
    // Nobody else waits: every delivery of the other endpoint, sent alongside, arrived before
    // the throttled endpoint's last, which its throttle held back for (MESSAGES - 1) gaps.
    let last_throttled = throttled.last().expect("throttled deliveries");
    let late = fast
        .delivered()
        .iter()
        .filter(|r| r.arrived > *last_throttled)
        .count();
    assert_eq!(
        late, 0,
        "deliveries of the other endpoint waited for the throttle"
    );
    server.stop().await;
}

/// Fairness (README, "Delivery controls"), at the volume its issue named: 2,000 deliveries
/// pending to an endpoint that never answers, 500 to a healthy one. Each healthy delivery fails
/// its first attempt, so every one of them is also claimed from the store (as a retry) while the
/// stalled endpoint sits at its bound, not only handed over at ingest.
#[tokio::test]
async fn a_stalled_endpoint_does_not_delay_a_healthy_one() {
    const STALLED: usize = 2_000;
    const HEALTHY: usize = 500;
    const BOUND: u64 = 8;
    let server = TestServer::start_with(|s| {
        s.request_timeout = Duration::from_secs(60);
        s.max_in_flight = 64;
        s.endpoint_max_in_flight = BOUND as usize;
        s.retry.schedule = vec![Duration::from_millis(20); 5];
    })
    .await;
    let stalled = Receiver::scripted(|_, _| Reply::Stall).await;
    let mut seen = HashSet::new();
    let healthy = Receiver::scripted_by_body(move |_, _, body| {
        if seen.insert(body.to_vec()) {
            Reply::Status(503)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (stalled_app, stalled_ep) = server.merchant_with_endpoint(&stalled.url("/")).await;
    let (healthy_app, _) = server.merchant_with_endpoint(&healthy.url("/")).await;
    let bodies = |n: usize| {
        (0..n)
            .map(|i| json!({"eventType": "payment.created", "payload": {"n": i}}))
            .collect::<Vec<_>>()
    };
    server
        .send_messages(&stalled_app, bodies(STALLED), 16)
        .await;
    let sent = server
        .send_messages(&healthy_app, bodies(HEALTHY), 16)
        .await;

    let delivered = healthy
        .wait_delivered(HEALTHY, Duration::from_secs(60))
        .await;
    let ids: HashSet<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
    assert!(sent.iter().all(|id| ids.contains(id.as_str())));
    let stats = server
        .get(&format!(
            "/api/v1/app/{stalled_app}/endpoint/{stalled_ep}/stats"
        ))
        .await
        .1;
    assert_eq!(stats["success"], 0, "{stats}");
    // Leased to the worker: the bound in flight and at most as many queued behind them.
    assert!(
        stats["sending"].as_u64().expect("sending") <= 2 * BOUND,
        "{stats}"
    );
    assert!(
        stats["pending"].as_u64().expect("pending") >= STALLED as u64 - 2 * BOUND,
        "{stats}"
    );
    stalled.set_script(|_, _| Reply::Status(204));
    server.stop().await;
}

#[tokio::test]
async fn messages_of_one_key_arrive_in_order_and_others_are_not_held() {
    // Enough retries that no delivery is exhausted by the failing receiver (a delivery can land
    // on the failing third several times in a row).
    let server =
        TestServer::start_with(|s| s.retry.schedule = vec![Duration::from_millis(10); 40]).await;
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
    let mut unkeyed = Vec::new();
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
        unkeyed.push(
            server
                .send_message(
                    &app,
                    json!({"eventType": "payment.updated", "payload": {"round": round}}),
                )
                .await,
        );
    }
    let all: Vec<&String> = sent.values().flatten().chain(&unkeyed).collect();
    let delivered = wait_all_delivered(&server, &app, &receiver, &all).await;
    assert!(
        receiver.received().len() > 120,
        "the receiver failed some requests, so some deliveries were retried"
    );
    let arrived: Vec<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
    for (key, ids) in &sent {
        let in_arrival_order: Vec<&str> = arrived
            .iter()
            .copied()
            .filter(|id| ids.iter().any(|sent| sent == id))
            .collect();
        assert_eq!(
            in_arrival_order, *ids,
            "{key}: successful deliveries out of ingest order"
        );
    }
    for id in &unkeyed {
        assert_eq!(
            arrived.iter().filter(|a| *a == id).count(),
            1,
            "unkeyed {id} delivered once"
        );
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

/// Waits until every message in `ids` reached the receiver; on timeout, panics with the delivery
/// state of those that did not.
async fn wait_all_delivered(
    server: &TestServer,
    app: &str,
    receiver: &Receiver,
    ids: &[&String],
) -> Vec<crate::receiver::Received> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = receiver.delivered();
        let missing: Vec<&&String> = ids
            .iter()
            .filter(|id| {
                !delivered
                    .iter()
                    .any(|r| r.header("webhook-id") == id.as_str())
            })
            .collect();
        if missing.is_empty() {
            return delivered;
        }
        if Instant::now() > deadline {
            let mut states = Vec::new();
            for id in missing {
                let state = server
                    .get(&format!("/api/v1/app/{app}/msg/{id}/endpoint"))
                    .await;
                states.push(format!("{id}: {}", state.1));
            }
            panic!("not delivered:\n{}", states.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deliveries that ingest leaves to claiming (a throttled endpoint's) and held deliveries made
/// due when the one before them in their key finishes must wake the worker: with the poll set to
/// an hour, only those wake-ups can deliver them.
#[tokio::test]
async fn work_that_becomes_due_is_claimed_without_waiting_for_the_poll() {
    let server = TestServer::start_with(|s| s.poll_interval = Duration::from_secs(3600)).await;
    let throttled = Receiver::start().await;
    // Holds the first keyed delivery until every message of the key is in, so the others are
    // all held and each is released only by the one before it finishing.
    let keyed = Receiver::scripted(|_, _| Reply::Stall).await;
    let throttled_app = server.create_app("Throttled").await;
    server
        .create_endpoint(
            &throttled_app,
            &throttled.url("/"),
            json!({"throttleRate": 100}),
        )
        .await;
    let (keyed_app, _) = server.merchant_with_endpoint(&keyed.url("/")).await;

    let mut sent = Vec::new();
    for n in 0..5 {
        server
            .send_message(
                &throttled_app,
                json!({"eventType": "payment.created", "payload": {"n": n}}),
            )
            .await;
        sent.push(
            server
                .send_message(
                    &keyed_app,
                    json!({"eventType": "payment.updated", "orderingKey": "pay_1", "payload": {"n": n}}),
                )
                .await,
        );
    }
    keyed.set_script(|_, _| Reply::Status(204));
    throttled.wait_delivered(5, Duration::from_secs(20)).await;
    let delivered = keyed.wait_delivered(5, Duration::from_secs(20)).await;
    let order: Vec<&str> = delivered.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(order, sent.iter().map(String::as_str).collect::<Vec<_>>());
    server.stop().await;
}
