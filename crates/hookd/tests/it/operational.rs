//! Operational webhooks reach the operator's URL, signed with the operational secret, in
//! Svix's shapes, retried like any webhook and visible through the API.

use std::time::Duration;

use hookd::config::{OperationalWebhook, Settings};
use hookd::domain::EndpointUrl;
use hookd_signing::Secret;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::{Received, Receiver, Reply};

const OPS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn send_operational_webhooks_to(settings: &mut Settings, ops: &Receiver) {
    settings.operational_webhook = Some(OperationalWebhook {
        url: EndpointUrl::parse(&ops.url("/ops")).expect("url"),
        secret: Secret::parse(OPS_SECRET).expect("secret"),
    });
}

/// Every operational webhook delivered so far, after checking its signature.
fn events(ops: &Receiver) -> Vec<Value> {
    let secret = Secret::parse(OPS_SECRET).expect("secret");
    ops.delivered()
        .iter()
        .map(|got: &Received| {
            let id = got.header("webhook-id");
            assert!(id.starts_with("msg_"), "webhook-id {id:?}");
            let timestamp: i64 = got.header("webhook-timestamp").parse().expect("timestamp");
            assert!(
                secret.verify_header(id, timestamp, &got.body, got.header("webhook-signature")),
                "an operational webhook does not verify with the operational secret"
            );
            serde_json::from_slice(&got.body).expect("a JSON body")
        })
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Waits until an event of type `kind` for which `matches` holds has arrived; answers it.
async fn wait_event(ops: &Receiver, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = events(ops);
        if let Some(found) = of_type(&all, kind).into_iter().find(|e| matches(e)) {
            return found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} operational webhook arrived; got {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn endpoint_changes_and_an_automatic_disabling_reach_the_operator() {
    // The operator's receiver fails once: the first event arrives on a retry.
    let ops = Receiver::scripted(|n, _| {
        if n == 0 {
            Reply::Status(503)
        } else {
            Reply::Status(204)
        }
    })
    .await;
    let server = TestServer::start_with(|s| {
        send_operational_webhooks_to(s, &ops);
        s.disable_after = Duration::from_millis(300);
        s.retry.schedule = vec![Duration::from_millis(25); 40];
    })
    .await;
    let merchant = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let (status, app) = server
        .post("/api/v1/app", json!({ "name": "Acme", "uid": "acme" }))
        .await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_str().expect("id").to_string();
    let endpoint = server
        .create_endpoint(&app, &merchant.url("/"), json!({ "uid": "primary" }))
        .await;
    let ep = endpoint["id"].as_str().expect("id").to_string();

    let created = wait_event(&ops, "endpoint.created", |_| true).await;
    assert_eq!(
        created["data"],
        json!({ "appId": app, "appUid": "acme", "endpointId": ep, "endpointUid": "primary" })
    );

    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({ "description": "renamed" })),
        )
        .await;
    assert_eq!(status, 200);
    wait_event(&ops, "endpoint.updated", |e| {
        e["data"]["endpointId"] == ep.as_str()
    })
    .await;

    // Only failures for longer than the period: disabled, and the operator hears of it.
    let msg = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "eventId": "evt-1", "payload": {} }),
        )
        .await;
    let disabled = wait_event(&ops, "endpoint.disabled", |_| true).await;
    let data = &disabled["data"];
    assert_eq!(data["appId"], app.as_str());
    assert_eq!(data["appUid"], "acme");
    assert_eq!(data["endpointId"], ep.as_str());
    assert_eq!(data["endpointUid"], "primary");
    assert_eq!(data["trigger"], "automatic");
    assert!(
        data["failSince"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{disabled}"
    );
    assert_eq!(
        server
            .get(&format!("/api/v1/app/{app}/endpoint/{ep}"))
            .await
            .1["disabled"],
        true
    );
    // Whether its fourth failure came before the period ran out (and sent
    // `message.attempt.failing`) depends on the machine's speed; exhaustion never reaches it.
    let all = events(&ops);
    for failing in of_type(&all, "message.attempt.failing") {
        assert_eq!(failing["data"]["msgId"], msg.as_str());
        assert_eq!(failing["data"]["msgEventId"], "evt-1");
    }
    assert_eq!(of_type(&all, "message.attempt.exhausted").len(), 0);

    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let deleted = wait_event(&ops, "endpoint.deleted", |_| true).await;
    assert_eq!(deleted["data"]["endpointUid"], "primary");

    // They are messages of the operational application, listed and attempted like any other.
    let listed = server
        .get("/api/v1/app/hookd-operational/msg?limit=250")
        .await
        .1;
    let types: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["eventType"].as_str())
        .collect();
    for kind in [
        "endpoint.created",
        "endpoint.updated",
        "endpoint.disabled",
        "endpoint.deleted",
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    let first = listed["data"]
        .as_array()
        .expect("data")
        .last()
        .expect("one");
    let attempts = server
        .get(&format!(
            "/api/v1/app/hookd-operational/attempt/msg/{}",
            first["id"].as_str().expect("id")
        ))
        .await
        .1;
    let codes: Vec<i64> = attempts["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|a| a["responseStatusCode"].as_i64())
        .collect();
    assert_eq!(codes, [204, 503], "the first event was retried");
    server.stop().await;
}

#[tokio::test]
async fn exhausted_and_recovered_deliveries_reach_the_operator() {
    let ops = Receiver::start().await;
    let server = TestServer::start_with(|s| {
        send_operational_webhooks_to(s, &ops);
        // Seven attempts: failing after the fourth, exhausted after the seventh.
        s.retry.schedule = vec![Duration::from_millis(20); 6];
    })
    .await;
    let dead = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let flaky = Receiver::scripted(|n, _| {
        if n < 5 {
            Reply::Status(502)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let (dead_app, dead_ep) = server.merchant_with_endpoint(&dead.url("/")).await;
    let (flaky_app, flaky_ep) = server.merchant_with_endpoint(&flaky.url("/")).await;
    let lost = server
        .send_message(
            &dead_app,
            json!({ "eventType": "payment.failed", "eventId": "pay-1", "payload": {} }),
        )
        .await;
    let late = server
        .send_message(
            &flaky_app,
            json!({ "eventType": "payment.captured", "payload": {} }),
        )
        .await;

    let exhausted = wait_event(&ops, "message.attempt.exhausted", |_| true).await;
    assert_eq!(exhausted["data"]["appId"], dead_app.as_str());
    assert_eq!(exhausted["data"]["endpointId"], dead_ep.as_str());
    assert_eq!(exhausted["data"]["msgId"], lost.as_str());
    assert_eq!(exhausted["data"]["msgEventId"], "pay-1");
    assert_eq!(exhausted["data"]["lastAttempt"]["responseStatusCode"], 500);
    let last_attempt = exhausted["data"]["lastAttempt"]["id"].as_str().expect("id");
    let attempts = server
        .get(&format!("/api/v1/app/{dead_app}/attempt/msg/{lost}"))
        .await
        .1;
    assert_eq!(attempts["data"].as_array().expect("data").len(), 7);
    assert_eq!(attempts["data"][0]["id"], last_attempt, "the last attempt");

    let recovered = wait_event(&ops, "message.attempt.recovered", |_| true).await;
    assert_eq!(recovered["data"]["appId"], flaky_app.as_str());
    assert_eq!(recovered["data"]["endpointId"], flaky_ep.as_str());
    assert_eq!(recovered["data"]["msgId"], late.as_str());
    assert!(recovered["data"]["msgEventId"].is_null());
    assert_eq!(recovered["data"]["lastAttempt"]["responseStatusCode"], 200);

    // Each delivery was reported failing once, and nothing else was sent about them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = events(&ops);
    let failing: Vec<&str> = of_type(&all, "message.attempt.failing")
        .iter()
        .filter_map(|e| e["data"]["msgId"].as_str())
        .collect();
    assert_eq!(failing.len(), 2, "{all:#?}");
    assert!(failing.contains(&lost.as_str()) && failing.contains(&late.as_str()));
    assert_eq!(of_type(&all, "message.attempt.exhausted").len(), 1);
    assert_eq!(of_type(&all, "message.attempt.recovered").len(), 1);
    assert_eq!(of_type(&all, "endpoint.disabled").len(), 0);
    assert_eq!(of_type(&all, "endpoint.created").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_410_disables_at_once_and_the_operator_hears_of_it() {
    let ops = Receiver::start().await;
    let server = TestServer::start_with(|s| send_operational_webhooks_to(s, &ops)).await;
    let gone = Receiver::scripted(|_, _| Reply::Status(410)).await;
    let (app, ep) = server.merchant_with_endpoint(&gone.url("/")).await;
    server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {} }),
        )
        .await;
    let disabled = wait_event(&ops, "endpoint.disabled", |_| true).await;
    assert_eq!(disabled["data"]["endpointId"], ep.as_str());
    assert_eq!(disabled["data"]["trigger"], "automatic");
    assert_eq!(gone.received().len(), 1);
    let all = events(&ops);
    assert_eq!(
        of_type(&all, "message.attempt.exhausted").len(),
        0,
        "{all:#?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_application_with_the_operational_uid_is_never_taken_over() {
    use hookd::store::{Application, OpenMode, PoolOptions};
    let database = crate::harness::TestDatabase::create().await;
    let store = hookd::store::open(
        &database.url,
        database.main_secret(),
        &PoolOptions::default(),
        OpenMode::Tool,
    )
    .await
    .expect("open");
    let squatter = Application {
        id: "app_2yQ9mS1bYQ1x8u1Qf5gD6nK3aBc".into(),
        uid: Some(hookd::domain::Uid::parse("hookd-operational").expect("a uid")),
        name: "Squatter".into(),
        throttle_rate: None,
        metadata: Default::default(),
        created_at: 0,
        updated_at: 0,
    };
    store.create_app(&squatter).await.expect("create");
    let ops = Receiver::start().await;
    let webhook = OperationalWebhook {
        url: EndpointUrl::parse(&ops.url("/ops")).expect("url"),
        secret: Secret::parse(OPS_SECRET).expect("secret"),
    };
    let refused = hookd::operational::ensure_target(&store, &webhook)
        .await
        .expect_err("took over a tenant's application");
    assert!(
        refused.to_string().contains("hookd-operational"),
        "{refused}"
    );
    let endpoints = store
        .list_endpoints(
            &squatter.id,
            &hookd::store::PageRequest {
                limit: 10,
                cursor: None,
                backwards: false,
                order: hookd::store::Order::Ascending,
            },
        )
        .await
        .expect("list");
    assert!(
        endpoints.is_empty(),
        "an endpoint was added to a tenant's application"
    );
}
