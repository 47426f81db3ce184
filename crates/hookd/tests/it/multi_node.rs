//! Several hookd nodes on one PostgreSQL database share the work and survive each other's
//! loss: one node killed with SIGKILL mid-run loses nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::child::{delivered_ids, post, try_post, ChildServer};
use crate::harness::{postgres_only, report, TestDatabase};
use crate::receiver::Receiver;

const NODES: usize = 3;
const MESSAGES: usize = 3000;
const PUBLISHERS: usize = 24;
/// The node killed halfway.
const VICTIM: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_everything_when_one_is_killed_halfway() {
    if !postgres_only("three_nodes_deliver_everything_when_one_is_killed_halfway") {
        return;
    }
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    let receiver = Receiver::start().await;
    // Short leases, so the dead node's deliveries are taken over within seconds.
    let settings = [
        ("HOOKD_LEASE_DURATION", "2s"),
        ("HOOKD_REQUEST_TIMEOUT", "1s"),
    ];
    // All nodes start at once on the empty database: migrations run under an advisory lock.
    let mut nodes: Vec<Option<ChildServer>> = (0..NODES)
        .map(|_| Some(ChildServer::spawn(&db, &log, &settings)))
        .collect();
    for node in nodes.iter().flatten() {
        node.wait_healthy().await;
    }
    let bases: Vec<String> = nodes.iter().flatten().map(|n| n.base.clone()).collect();
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", bases[0]),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", bases[1]),
        json!({"url": receiver.url("/hook")}),
    )
    .await;

    // Publishers spread the messages over the nodes, skipping the victim once it is dead.
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let victim_dead = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (client, bases, app_id) = (client.clone(), bases.clone(), app_id.clone());
        let (accepted, next, victim_dead, refused) = (
            Arc::clone(&accepted),
            Arc::clone(&next),
            Arc::clone(&victim_dead),
            Arc::clone(&refused),
        );
        publishers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= MESSAGES {
                    break;
                }
                let mut node = n % NODES;
                if node == VICTIM && victim_dead.load(Ordering::Relaxed) {
                    node = n % (NODES - 1);
                }
                let url = format!("{}/api/v1/app/{app_id}/msg", bases[node]);
                let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
                match try_post(&client, url, body).await {
                    Some(message) => {
                        let id = message["id"].as_str().expect("id").to_string();
                        accepted.lock().expect("accepted").insert(id);
                    }
                    // The victim died under this request: it was not accepted, so it is not
                    // owed. The publisher moves on, as a platform would retry elsewhere.
                    None => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Halfway through, SIGKILL one node.
    while accepted.lock().expect("accepted").len() < MESSAGES / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (held_at_kill, _) = leases(&pool).await;
    victim_dead.store(true, Ordering::Relaxed);
    nodes[VICTIM].take().expect("victim").kill();
    let delivered_at_kill = receiver.delivered().len();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let accepted = accepted.lock().expect("accepted").clone();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (lost, duplicates) = loop {
        let (delivered, duplicates) = delivered_ids(&receiver);
        let lost = accepted.difference(&delivered).count();
        if lost == 0 || tokio::time::Instant::now() >= deadline {
            break (lost, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The killed node is the one whose heartbeat stopped; it held leased work just before it
    // died (the leases were read a moment before the kill).
    let victim = silent_node(&pool).await;
    let held_by_victim = held_at_kill.get(&victim).copied().unwrap_or(0);
    pool.close().await;
    report(&format!(
        "multi-node: {NODES} nodes, {} accepted, {} refused by the killed node, {delivered_at_kill} delivered at the kill, {held_by_victim} leases held by it then, lost {lost}, duplicates {duplicates}",
        accepted.len(),
        refused.load(Ordering::Relaxed),
    ));
    assert!(
        held_by_victim > 0,
        "the killed node held no leased work just before it died: {held_at_kill:?}"
    );
    assert_eq!(
        lost,
        0,
        "accepted messages never delivered; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        accepted.len() >= MESSAGES - PUBLISHERS,
        "{}",
        accepted.len()
    );
    for node in nodes.iter_mut().flatten() {
        assert!(node.is_running(), "a surviving node stopped");
    }
}

#[tokio::test]
async fn an_api_node_and_a_worker_node_split_the_roles_and_notify_each_other() {
    if !postgres_only("an_api_node_and_a_worker_node_split_the_roles_and_notify_each_other") {
        return;
    }
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    let receiver = Receiver::start().await;
    let api = ChildServer::start(&db, &log, &[("HOOKD_ROLE", "api")]).await;
    // The worker polls only once a minute: prompt deliveries prove the NOTIFY wake-up.
    let worker = ChildServer::start(
        &db,
        &log,
        &[("HOOKD_ROLE", "worker"), ("HOOKD_POLL_INTERVAL", "60s")],
    )
    .await;
    let client = reqwest::Client::new();

    // The worker serves health probes, not the management API.
    let status = client
        .get(format!("{}/api/v1/app", worker.base))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("get")
        .status();
    assert_eq!(status, 404);

    let app = post(
        &client,
        format!("{}/api/v1/app", api.base),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", api.base),
        json!({"url": receiver.url("/hook")}),
    )
    .await;
    // Let the worker settle into its long poll before the messages arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..5 {
        post(
            &client,
            format!("{}/api/v1/app/{app_id}/msg", api.base),
            json!({"eventType": "payment.captured", "payload": {"n": n}}),
        )
        .await;
    }
    receiver.wait_delivered(5, Duration::from_secs(10)).await;
    drop((api, worker));
}

/// The node whose heartbeat is the oldest: after a kill and a few heartbeats of the others,
/// the dead one.
async fn silent_node(pool: &sqlx::PgPool) -> String {
    tokio::time::sleep(Duration::from_secs(5)).await;
    sqlx::query_scalar("SELECT id FROM nodes ORDER BY heartbeat_at LIMIT 1")
        .fetch_one(pool)
        .await
        .expect("nodes")
}

/// The deliveries each node holds a lease on, by node id, and the node that started first.
async fn leases(pool: &sqlx::PgPool) -> (std::collections::HashMap<String, i64>, String) {
    let held: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lease_owner, COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL
         GROUP BY lease_owner",
    )
    .fetch_all(pool)
    .await
    .expect("leases");
    let first: String = sqlx::query_scalar("SELECT id FROM nodes ORDER BY started_at LIMIT 1")
        .fetch_one(pool)
        .await
        .expect("nodes");
    (held.into_iter().collect(), first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_taken_over_and_its_late_results_change_nothing() {
    if !postgres_only("a_paused_node_is_taken_over_and_its_late_results_change_nothing") {
        return;
    }
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    // Slow answers keep attempts in flight, so the paused node holds leased work.
    let receiver = Receiver::scripted(|_, _| crate::receiver::Reply::Slow(204, 300)).await;
    let settings = [
        ("HOOKD_LEASE_DURATION", "2s"),
        ("HOOKD_REQUEST_TIMEOUT", "1s"),
    ];
    let paused = ChildServer::start(&db, &log, &settings).await;
    // Started second, so the first row of `nodes` is the paused one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = ChildServer::start(&db, &log, &settings).await;
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", paused.base),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", paused.base),
        json!({"url": receiver.url("/hook")}),
    )
    .await;
    let mut accepted = HashSet::new();
    for n in 0..300 {
        let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
        let message = post(
            &client,
            format!("{}/api/v1/app/{app_id}/msg", paused.base),
            body,
        )
        .await;
        accepted.insert(message["id"].as_str().expect("id").to_string());
    }
    receiver.wait_delivered(20, Duration::from_secs(20)).await;

    // Paused for longer than a lease, holding leased, unfinished attempts.
    paused.signal("STOP");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let (held, paused_id) = leases(&pool).await;
    let held_by_paused = held.get(&paused_id).copied().unwrap_or(0);
    assert!(
        held_by_paused > 0,
        "the paused node held no lease: {held:?}"
    );
    let delivered_at_pause = receiver.delivered().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let delivered_while_paused = receiver.delivered().len() - delivered_at_pause;
    paused.signal("CONT");
    assert!(
        delivered_while_paused > 0,
        "the other node took nothing over"
    );

    // Everything arrives; once the paused node's late results are in, every delivery is done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let (lost, duplicates) = loop {
        let (delivered, duplicates) = delivered_ids(&receiver);
        let lost = accepted.difference(&delivered).count();
        if lost == 0 || tokio::time::Instant::now() >= deadline {
            break (lost, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unfinished: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status <> 0")
        .fetch_one(&pool)
        .await
        .expect("count");
    report(&format!(
        "paused node: held {held_by_paused} leases at the pause, {delivered_while_paused} delivered by the other node meanwhile, lost {lost}, duplicates {duplicates}"
    ));
    assert_eq!(
        lost,
        0,
        "log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(unfinished, 0, "a late result undid a finished delivery");
    pool.close().await;
    drop((paused, other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_endpoints_rate() {
    if !postgres_only("two_nodes_share_one_endpoints_rate") {
        return;
    }
    const RATE: u32 = 5;
    const MESSAGES: usize = 16;
    let gap = Duration::from_millis(1000 / u64::from(RATE));
    let db = TestDatabase::create().await;
    let log = db.dir().join("hookd.log");
    let receiver = Receiver::start().await;
    let nodes = [
        ChildServer::start(&db, &log, &[]).await,
        ChildServer::start(&db, &log, &[]).await,
    ];
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", nodes[0].base),
        json!({"name": "M"}),
    )
    .await;
    let app_id = app["id"].as_str().expect("id").to_string();
    post(
        &client,
        format!("{}/api/v1/app/{app_id}/endpoint", nodes[1].base),
        json!({"url": receiver.url("/hook"), "throttleRate": RATE}),
    )
    .await;
    // Both nodes take messages for the one endpoint, alternately.
    let started = std::time::Instant::now();
    for n in 0..MESSAGES {
        let base = &nodes[n % 2].base;
        let body = json!({"eventType": "payment.captured", "payload": {"n": n}});
        post(&client, format!("{base}/api/v1/app/{app_id}/msg"), body).await;
    }
    receiver
        .wait_delivered(MESSAGES, Duration::from_secs(60))
        .await;
    let mut arrived: Vec<std::time::Instant> =
        receiver.delivered().iter().map(|r| r.arrived).collect();
    arrived.sort();
    // As on one node (see `controls`): the k-th delivery cannot arrive before k gaps after the
    // first message was sent, whichever node started it. A few ms for whole-ms planning.
    let rounding = Duration::from_millis(5);
    for (k, at) in arrived.iter().enumerate() {
        let earliest = (gap * u32::try_from(k).expect("count")).saturating_sub(rounding);
        assert!(
            at.duration_since(started) >= earliest,
            "delivery {k} arrived {:?} after the first message, before {earliest:?}: the nodes \
             did not share the rate",
            at.duration_since(started)
        );
    }
    drop(nodes);
}
