//! Catch-up after an outage (ARCHITECTURE.md, "Catching up after an outage"): once a failing
//! endpoint answers again, its deliveries waiting for a retry minutes away arrive at once, and
//! a throttled endpoint's still arrive no faster than its rate. The retry schedule here is
//! minutes and the poll an hour, so only the catch-up (and the wake-up it sends the
//! dispatcher) can deliver them within the test.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

/// Deliveries that fail while the receiver is down.
const DOWN: usize = 6;

async fn server_with_slow_retries() -> TestServer {
    TestServer::start_with(|s| {
        s.retry.schedule = vec![Duration::from_secs(300); 3];
        s.poll_interval = Duration::from_secs(3600);
    })
    .await
}

fn payment(n: usize) -> Value {
    json!({"eventType": "payment.captured", "payload": {"n": n}})
}

/// Sends `DOWN` messages the receiver fails, waits until all their failures are recorded, then
/// one more that it accepts: the endpoint is back.
async fn outage_then_recovery(server: &TestServer, app: &str, endpoint: &str) {
    for n in 0..DOWN {
        server.send_message(app, payment(n)).await;
    }
    server
        .wait_for(
            &format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}?status=2"),
            Duration::from_secs(30),
            |b| b["data"].as_array().is_some_and(|d| d.len() == DOWN),
        )
        .await;
    server.send_message(app, payment(DOWN)).await;
}

/// The body's `n` of each delivered request, sorted.
fn delivered_numbers(receiver: &Receiver) -> Vec<u64> {
    let mut numbers: Vec<u64> = receiver
        .delivered()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json body");
            body["n"].as_u64().expect("n")
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

#[tokio::test]
async fn a_recovered_endpoint_gets_its_waiting_deliveries_at_once() {
    let server = server_with_slow_retries().await;
    let receiver = Receiver::scripted(|n, _| {
        if n < DOWN {
            Reply::Status(503)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let (app, endpoint) = server.merchant_with_endpoint(&receiver.url("/")).await;

    outage_then_recovery(&server, &app, &endpoint).await;

    // Without the catch-up they would wait five minutes for their retry.
    receiver
        .wait_delivered(DOWN + 1, Duration::from_secs(60))
        .await;
    let all: Vec<u64> = (0..=DOWN as u64).collect();
    assert_eq!(delivered_numbers(&receiver), all);
    assert_eq!(receiver.received().len(), 2 * DOWN + 1, "each retried once");
    server.stop().await;
}

#[tokio::test]
async fn a_recovered_throttled_endpoint_still_keeps_its_rate() {
    const RATE: u64 = 5;
    let server = server_with_slow_retries().await;
    let receiver = Receiver::scripted(|n, _| {
        if n < DOWN {
            Reply::Status(503)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let app = server.create_app("Throttled").await;
    let endpoint = server
        .create_endpoint(&app, &receiver.url("/"), json!({"throttleRate": RATE}))
        .await;
    let endpoint = endpoint["id"].as_str().expect("endpoint id").to_string();

    outage_then_recovery(&server, &app, &endpoint).await;

    receiver
        .wait_delivered(DOWN + 1, Duration::from_secs(60))
        .await;
    assert_eq!(delivered_numbers(&receiver).len(), DOWN + 1);
    // The throttle plans the starts 1000 / RATE ms apart. Arrivals jitter with the machine's
    // load (one start made late by a busy CPU lands closer to the next), so the verdict is on
    // what a burst would break: the released deliveries together span about their planned
    // time, and no two of them land together.
    let interval = Duration::from_millis(1000 / RATE);
    let arrivals: Vec<Instant> = receiver.delivered().iter().map(|r| r.arrived).collect();
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    let planned = interval * (arrivals.len() as u32 - 1);
    assert!(
        span >= planned * 3 / 4,
        "{} deliveries within {span:?}; the rate spreads them over {planned:?}",
        arrivals.len()
    );
    let closest = arrivals
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .min()
        .expect("several arrivals");
    assert!(
        closest >= interval / 4,
        "two deliveries {closest:?} apart, the rate allows {interval:?}"
    );
    server.stop().await;
}
