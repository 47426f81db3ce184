//! The store's reads and writes for the operator dashboard, on the trait itself and on both
//! backends: per-minute traffic from several nodes, node reports, the audit log, API token
//! listing and revocation, and their retention.

use hookd::domain::ids::{new_id, IdPrefix};
use hookd::domain::time::now_millis;
use hookd::store::{
    self, ApiToken, AuditEntry, AuditFilter, NodeReport, OpenMode, Order, PageRequest, PoolOptions,
    SharedStore, TokenKind, TrafficMinute,
};

use crate::harness::TestDatabase;

async fn open() -> (SharedStore, TestDatabase) {
    let database = TestDatabase::create().await;
    let pool = PoolOptions {
        max_connections: 4,
        ..PoolOptions::default()
    };
    let store = store::open(
        &database.url,
        database.main_secret(),
        &pool,
        OpenMode::Serve,
    )
    .await
    .expect("open the store");
    (store, database)
}

fn minute(minute: i64, messages_in: u64, delivered: u64, failed: u64) -> TrafficMinute {
    TrafficMinute {
        minute,
        messages_in,
        delivered,
        failed,
    }
}

fn newest_first(limit: usize, cursor: Option<String>) -> PageRequest {
    PageRequest {
        limit,
        cursor,
        backwards: false,
        order: Order::Descending,
    }
}

#[tokio::test]
async fn traffic_from_every_node_adds_up_per_minute() {
    let (store, _db) = open().await;
    store
        .add_traffic("node_a", &[minute(100, 2, 1, 1), minute(101, 1, 0, 0)])
        .await
        .expect("a");
    store
        .add_traffic("node_b", &[minute(100, 3, 3, 0)])
        .await
        .expect("b");
    // A node's next report for the same minute adds to it (counts are deltas).
    store
        .add_traffic("node_a", &[minute(101, 4, 2, 2)])
        .await
        .expect("a again");
    let all = store.traffic_since(0).await.expect("read");
    assert_eq!(all, vec![minute(100, 5, 4, 1), minute(101, 5, 2, 2)]);
    assert_eq!(
        store.traffic_since(101).await.expect("read"),
        vec![minute(101, 5, 2, 2)]
    );
}

#[tokio::test]
async fn a_node_report_replaces_the_last_and_silent_nodes_can_be_left_out() {
    let (store, _db) = open().await;
    let mut node = NodeReport {
        id: "node_a".into(),
        role: "all".into(),
        version: "0.1.0".into(),
        started_at: 1_000,
        heartbeat_at: 2_000,
        in_flight: 3,
    };
    store.report_node(&node).await.expect("report");
    node.heartbeat_at = 5_000;
    node.in_flight = 0;
    store.report_node(&node).await.expect("report again");
    let old = NodeReport {
        id: "node_b".into(),
        heartbeat_at: 1_500,
        ..node.clone()
    };
    store.report_node(&old).await.expect("old node");
    assert_eq!(store.list_nodes(0).await.expect("all").len(), 2);
    assert_eq!(store.list_nodes(4_000).await.expect("recent"), vec![node]);
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_and_filters() {
    let (store, _db) = open().await;
    let mut written = Vec::new();
    for (i, (actor, action)) in [("ann", "disable"), ("bob", "enable"), ("ann", "resend")]
        .into_iter()
        .enumerate()
    {
        let entry = AuditEntry {
            id: new_id(IdPrefix::Audit),
            at: 1_000 + i as i64,
            actor: actor.into(),
            action: action.into(),
            app_id: Some("app_1".into()).filter(|_| i != 1),
            target: format!("ep_{i}"),
            detail: String::new(),
        };
        store.append_audit(&entry).await.expect("append");
        written.push(entry);
        // Ids order the log; make sure each is a later millisecond.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let all = store
        .list_audit(&AuditFilter::default(), &newest_first(2, None))
        .await
        .expect("page 1");
    // One row more than the page tells that more follow.
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], written[2]);
    let rest = store
        .list_audit(
            &AuditFilter::default(),
            &newest_first(2, Some(all[1].id.clone())),
        )
        .await
        .expect("page 2");
    assert_eq!(rest, vec![written[0].clone()]);
    let anns = AuditFilter {
        actor: Some("ann".into()),
        ..AuditFilter::default()
    };
    let found = store
        .list_audit(&anns, &newest_first(10, None))
        .await
        .expect("ann");
    assert_eq!(found, vec![written[2].clone(), written[0].clone()]);
    let by_app = AuditFilter {
        app_id: Some("app_1".into()),
        action: Some("disable".into()),
        ..AuditFilter::default()
    };
    let found = store
        .list_audit(&by_app, &newest_first(10, None))
        .await
        .expect("app");
    assert_eq!(found, vec![written[0].clone()]);
}

#[tokio::test]
async fn only_live_api_tokens_are_listed_and_only_they_can_be_revoked_by_id() {
    let (store, _db) = open().await;
    let now = now_millis();
    let token = |kind: TokenKind, expires_at: Option<i64>| ApiToken {
        id: new_id(IdPrefix::Token),
        hash: new_id(IdPrefix::Token),
        name: format!("{kind:?}"),
        app_id: None,
        created_at: now,
        revoked: false,
        kind,
        expires_at,
        capabilities: None,
    };
    let live = token(TokenKind::Api, None);
    let expired = token(TokenKind::Api, Some(now - 1));
    let session = token(TokenKind::OperatorSession, Some(now + 60_000));
    for t in [&live, &expired, &session] {
        store.create_token(t).await.expect("create");
    }
    let listed: Vec<String> = store
        .list_api_tokens()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, vec![live.id.clone()]);
    assert!(!store.revoke_api_token(&session.id).await.expect("session"));
    assert!(store.revoke_api_token(&live.id).await.expect("revoke"));
    assert!(!store.revoke_api_token(&live.id).await.expect("twice"));
    assert!(store.list_api_tokens().await.expect("list").is_empty());
    let found = store
        .find_token(&session.hash)
        .await
        .expect("find")
        .expect("session");
    assert!(
        found.is_live(now),
        "revoking an API token by id touched a session"
    );
}

#[tokio::test]
async fn retention_takes_old_traffic_audit_entries_and_nodes() {
    let (store, _db) = open().await;
    let now = now_millis();
    let cut = now - 3_600_000;
    let old_minute = hookd::store::dashboard::minute_of(cut) - 5;
    let new_minute = hookd::store::dashboard::minute_of(now);
    store
        .add_traffic(
            "node_a",
            &[minute(old_minute, 1, 1, 0), minute(new_minute, 2, 2, 0)],
        )
        .await
        .expect("traffic");
    for at in [cut - 1, now] {
        store
            .append_audit(&AuditEntry {
                id: new_id(IdPrefix::Audit),
                at,
                actor: "ann".into(),
                action: "disable".into(),
                app_id: None,
                target: "ep".into(),
                detail: String::new(),
            })
            .await
            .expect("audit");
    }
    for (id, heartbeat_at) in [("node_old", cut - 1), ("node_new", now)] {
        store
            .report_node(&NodeReport {
                id: id.into(),
                role: "all".into(),
                version: "0".into(),
                started_at: 0,
                heartbeat_at,
                in_flight: 0,
            })
            .await
            .expect("node");
    }
    store.prune(cut, 1000).await.expect("prune");
    assert_eq!(
        store.traffic_since(0).await.expect("traffic"),
        vec![minute(new_minute, 2, 2, 0)]
    );
    let audit = store
        .list_audit(&AuditFilter::default(), &newest_first(10, None))
        .await
        .expect("audit");
    assert_eq!(audit.iter().map(|e| e.at).collect::<Vec<_>>(), vec![now]);
    let nodes = store.list_nodes(0).await.expect("nodes");
    assert_eq!(
        nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        vec!["node_new"]
    );
}
