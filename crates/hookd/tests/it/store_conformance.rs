//! The `Store` trait's promises, checked on the trait itself: no HTTP, no engine, no waiting
//! for time to pass. Every test opens a store on a fresh database of the backend under test
//! (`HOOKD_TEST_BACKEND`, as the rest of the suite) and drives it with explicit clocks: the
//! `now` of each lease, recording and task batch is a number the test chooses, counted from
//! `t0`, the wall clock when the test starts (message ids, which the store orders by, carry
//! the wall clock too).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hookd::domain::time::now_millis;
use hookd::domain::{AppId, AttemptId, EndpointId, EventTypeName, MessageId, TaskId, Uid};
use hookd::operational::{Event, Kind};
use hookd::store::{
    self, Application, Attempt, AttemptFilter, AttemptResult, BackgroundTask, ClaimedDelivery,
    DeliveryStatus, DisabledEndpoint, Endpoint, EndpointRoom, FeedPosition, HealthPolicy, Lease,
    Message, NextStep, OpenMode, Order, PageRequest, PoolOptions, SharedStore, TaskKind,
    TaskStatus, TriggerType, CATCHUP_BATCH, CATCHUP_RESTART_AFTER_MS,
};
use hookd_signing::Secret;

use crate::harness::TestDatabase;

const SECOND: i64 = 1000;
const HOUR: i64 = 3600 * SECOND;
/// The health window of these tests: an endpoint failing for an hour is disabled.
const HEALTH: HealthPolicy = HealthPolicy {
    disable_after: Duration::from_secs(3600),
};

/// A store on a fresh database, and the time the test starts from.
struct Fixture {
    // Declared first so that it closes before the database is dropped.
    store: SharedStore,
    _database: TestDatabase,
    t0: i64,
}

impl Fixture {
    async fn new() -> Self {
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
        Self {
            store,
            _database: database,
            t0: now_millis(),
        }
    }

    async fn app(&self) -> AppId {
        let app = Application {
            id: AppId::generate(),
            uid: None,
            name: "Conformance".into(),
            throttle_rate: None,
            metadata: BTreeMap::new(),
            created_at: self.t0,
            updated_at: self.t0,
        };
        self.store.create_app(&app).await.expect("create app");
        app.id
    }

    async fn endpoint(&self, app_id: &AppId, throttle_rate: Option<i64>) -> Endpoint {
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            app_id: app_id.clone(),
            uid: None,
            url: "http://127.0.0.1:9/".into(),
            description: String::new(),
            disabled: false,
            event_types: None,
            channels: None,
            throttle_rate,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            secret: Secret::generate().into(),
            retiring_secrets: Vec::new(),
            created_at: self.t0,
            updated_at: self.t0,
        };
        self.store
            .create_endpoint(&endpoint)
            .await
            .expect("create endpoint");
        endpoint
    }

    /// Commits a message created at `t0 + at`, due then for every endpoint of `app_id`.
    async fn message(&self, app_id: &AppId, ordering_key: Option<&str>, at: i64) -> MessageId {
        let message = Message {
            id: MessageId::generate(),
            app_id: app_id.clone(),
            event_type: EventTypeName::parse("invoice.paid").expect("an event type"),
            event_id: None,
            channels: None,
            payload: Arc::from(r#"{"n":1}"#),
            ordering_key: ordering_key.map(|key| Uid::parse(key).expect("an ordering key")),
            created_at: self.t0 + at,
            payload_expires_at: self.t0 + 24 * HOUR,
            payload_expired: false,
        };
        self.store
            .create_message(&message, None)
            .await
            .expect("create message");
        message.id
    }

    /// Claims what is due at `t0 + at` under the lease `token`, held for `hold` ms.
    async fn claim(&self, token: &str, at: i64, hold: i64) -> Vec<ClaimedDelivery> {
        let lease = Lease::new("conformance", token, self.t0 + at, self.t0 + at + hold);
        self.store.claim_due(&lease, 50).await.expect("claim")
    }

    /// Claims up to `limit` deliveries due at `t0 + at` under the lease `token`, held a second.
    async fn claim_many(&self, token: &str, at: i64, limit: usize) -> Vec<ClaimedDelivery> {
        let lease = Lease::new("conformance", token, self.t0 + at, self.t0 + at + SECOND);
        self.store.claim_due(&lease, limit).await.expect("claim")
    }

    /// Records one result per delivery at `t0 + at`; answers which applied.
    async fn record(
        &self,
        outcomes: &[(&ClaimedDelivery, NextStep)],
        at: i64,
        policy: &HealthPolicy,
    ) -> store::Recorded {
        let results: Vec<AttemptResult> = outcomes
            .iter()
            .map(|(delivery, next)| result(delivery, *next, self.t0 + at))
            .collect();
        self.store
            .record_attempts(&results, policy, self.t0 + at)
            .await
            .expect("record")
    }

    /// Records one result per delivery at `t0 + at`, of attempts started at `t0 + started`.
    async fn record_started(
        &self,
        outcomes: &[(&ClaimedDelivery, NextStep)],
        started: i64,
        at: i64,
    ) -> store::Recorded {
        let results: Vec<AttemptResult> = outcomes
            .iter()
            .map(|(delivery, next)| result(delivery, *next, self.t0 + started))
            .collect();
        self.store
            .record_attempts(&results, &HEALTH, self.t0 + at)
            .await
            .expect("record")
    }

    /// The state of a message's delivery to its one endpoint.
    async fn state(&self, app_id: &AppId, msg_id: &MessageId) -> DeliveryStatus {
        let deliveries = self
            .store
            .list_message_deliveries(app_id, msg_id, &page())
            .await
            .expect("list deliveries");
        assert_eq!(deliveries.len(), 1, "one endpoint");
        deliveries[0].1.status
    }
}

fn page() -> PageRequest {
    PageRequest {
        limit: 50,
        cursor: None,
        backwards: false,
        order: Order::Ascending,
    }
}

/// The result of an attempt of `delivery` made at `at` that leads to `next`.
fn result(delivery: &ClaimedDelivery, next: NextStep, at: i64) -> AttemptResult {
    let (success, code) = match next {
        NextStep::Done => (true, 200),
        NextStep::Gone => (false, 410),
        NextStep::RetryAt(_) | NextStep::Exhausted => (false, 500),
    };
    AttemptResult {
        delivery_id: delivery.delivery_id.clone(),
        lease_token: delivery.lease_token.clone(),
        attempt: Attempt {
            id: AttemptId::generate(),
            msg_id: delivery.msg_id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            url: delivery.url.clone(),
            success,
            response_status_code: code,
            response: String::new(),
            response_duration_ms: 1,
            trigger_type: delivery.trigger_type,
            created_at: at,
        },
        app_id: delivery.app_id.clone(),
        next,
        attempt_number: delivery.attempts_made + 1,
    }
}

fn msg_ids(claimed: &[ClaimedDelivery]) -> Vec<&str> {
    claimed.iter().map(|d| d.msg_id.as_str()).collect()
}

#[tokio::test]
async fn a_result_under_a_lost_lease_changes_nothing() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let msg = f.message(&app, None, 0).await;

    let first = f.claim("lease-a", 1, 100).await;
    assert_eq!(msg_ids(&first), [msg.as_str()]);
    // Lease a expires unrecorded; lease b takes the delivery over.
    let second = f.claim("lease-b", 200, 100).await;
    assert_eq!(msg_ids(&second), [msg.as_str()]);

    let late = f.record(&[(&first[0], NextStep::Done)], 210, &HEALTH).await;
    assert_eq!(
        late.applied,
        [false],
        "a result under a lost lease is refused"
    );
    assert_eq!(f.state(&app, &msg).await, DeliveryStatus::Sending);
    let attempts = f
        .store
        .list_attempts(&app, &AttemptFilter::default(), &page())
        .await
        .expect("attempts");
    assert!(attempts.is_empty(), "no attempt is logged for it");

    let current = f
        .record(&[(&second[0], NextStep::Done)], 220, &HEALTH)
        .await;
    assert_eq!(current.applied, [true]);
    assert_eq!(f.state(&app, &msg).await, DeliveryStatus::Success);
}

#[tokio::test]
async fn an_expired_lease_is_claimable_again() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let msg = f.message(&app, None, 0).await;

    assert_eq!(f.claim("lease-a", 1, 100).await.len(), 1);
    assert!(
        f.claim("lease-b", 100, 100).await.is_empty(),
        "a held lease is not claimable"
    );
    let again = f.claim("lease-c", 101, 100).await;
    assert_eq!(msg_ids(&again), [msg.as_str()], "expired at its end");
    assert_eq!(again[0].lease_token, "lease-c");
    let recorded = f.record(&[(&again[0], NextStep::Done)], 150, &HEALTH).await;
    assert_eq!(recorded.applied, [true]);
}

#[tokio::test]
async fn a_claim_takes_no_more_of_an_endpoint_than_the_worker_has_room_for() {
    let f = Fixture::new().await;
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        let app = f.app().await;
        let endpoint = f.endpoint(&app, None).await;
        for n in 0..10 {
            f.message(&app, None, n).await;
        }
        endpoints.push(endpoint.id);
    }
    let [limited, open, skipped] = [0, 1, 2].map(|i| endpoints[i].clone());
    let count = |claimed: &[ClaimedDelivery], id: &EndpointId| {
        claimed.iter().filter(|d| &d.endpoint_id == id).count()
    };
    let at = |token: &str| Lease::new("conformance", token, f.t0 + 100, f.t0 + 100 + SECOND);

    // Every endpoint with the same room: one walk of the due order, capped per endpoint.
    let lease = Lease {
        endpoint_room: EndpointRoom {
            each: 3,
            limited: Vec::new(),
        },
        ..at("lease-a")
    };
    let claimed = f.store.claim_due(&lease, 50).await.expect("claim");
    assert_eq!(
        endpoints
            .iter()
            .map(|id| count(&claimed, id))
            .collect::<Vec<_>>(),
        [3, 3, 3]
    );

    // One endpoint with less room, one passed over.
    let lease = Lease {
        skip_endpoints: vec![skipped.clone()],
        endpoint_room: EndpointRoom {
            each: 5,
            limited: vec![(limited.clone(), 2)],
        },
        ..at("lease-b")
    };
    let claimed = f.store.claim_due(&lease, 50).await.expect("claim");
    assert_eq!(count(&claimed, &limited), 2);
    assert_eq!(count(&claimed, &open), 5);
    assert_eq!(count(&claimed, &skipped), 0);
}

#[tokio::test]
async fn a_disabled_endpoints_delivery_is_cancelled_when_claimed() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let mut endpoint = f.endpoint(&app, None).await;
    let msg = f.message(&app, None, 0).await;
    let read_at = endpoint.updated_at;
    endpoint.disabled = true;
    endpoint.updated_at = read_at + 1;
    assert!(f
        .store
        .update_endpoint(&endpoint, read_at)
        .await
        .expect("disable endpoint"));
    // Disabling cancelled the delivery; a resend makes it due again behind that.
    assert!(f
        .store
        .resend(&app, &msg, &endpoint.id)
        .await
        .expect("resend"));

    // The resend is due at the wall clock's now, which an hour from t0 has passed.
    assert!(f.claim("lease-a", HOUR, 100).await.is_empty());
    assert_eq!(f.state(&app, &msg).await, DeliveryStatus::Canceled);
}

#[tokio::test]
async fn the_next_delivery_of_a_key_waits_until_the_one_before_it_finishes() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let first = f.message(&app, Some("order-1"), 0).await;
    let second = f.message(&app, Some("order-1"), 1).await;
    assert_eq!(f.state(&app, &second).await, DeliveryStatus::Held);

    let claimed = f.claim("lease-a", 10, 100).await;
    assert_eq!(msg_ids(&claimed), [first.as_str()]);
    let retry = f
        .record(
            &[(&claimed[0], NextStep::RetryAt(f.t0 + 5000))],
            20,
            &HEALTH,
        )
        .await;
    assert_eq!(retry.released, 0, "a retry keeps the key held");
    assert!(f.claim("lease-b", 30, 100).await.is_empty());

    let claimed = f.claim("lease-c", 5000, 100).await;
    assert_eq!(msg_ids(&claimed), [first.as_str()]);
    let done = f
        .record(&[(&claimed[0], NextStep::Done)], 5010, &HEALTH)
        .await;
    assert_eq!(done.released, 1, "finishing releases the next of the key");
    let claimed = f.claim("lease-d", 5020, 100).await;
    assert_eq!(msg_ids(&claimed), [second.as_str()]);
}

#[tokio::test]
async fn a_throttled_endpoint_starts_deliveries_one_interval_apart() {
    let f = Fixture::new().await;
    let app = f.app().await;
    // Five per second: one every 200 ms.
    f.endpoint(&app, Some(5)).await;
    let msgs = [
        f.message(&app, None, 0).await,
        f.message(&app, None, 0).await,
        f.message(&app, None, 0).await,
    ];

    let now = f.claim("lease-a", 10, 1000).await;
    assert_eq!(
        msg_ids(&now),
        [msgs[0].as_str()],
        "one now, the others later"
    );
    assert!(f.claim("lease-b", 209, 1000).await.is_empty());
    let next = f.claim("lease-c", 210, 1000).await;
    assert_eq!(msg_ids(&next), [msgs[1].as_str()]);
    assert!(f.claim("lease-d", 409, 1000).await.is_empty());
    let last = f.claim("lease-e", 410, 1000).await;
    assert_eq!(msg_ids(&last), [msgs[2].as_str()]);
}

#[tokio::test]
async fn failing_for_the_whole_window_disables_an_endpoint_and_cancels_its_work() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    for at in 0..3 {
        f.message(&app, None, at).await;
    }
    let claimed = f.claim("lease-a", 5, 10 * HOUR).await;
    assert_eq!(claimed.len(), 3);
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);

    let first = f.record(&[(&claimed[0], retry)], 10, &HEALTH).await;
    assert!(
        first.disabled.is_empty(),
        "the first failure starts the clock"
    );
    let short = f
        .record(&[(&claimed[1], retry)], 10 + HOUR - 1, &HEALTH)
        .await;
    assert!(
        short.disabled.is_empty(),
        "one millisecond short of the window"
    );
    let long = f.record(&[(&claimed[2], retry)], 10 + HOUR, &HEALTH).await;
    assert_eq!(long.disabled.len(), 1, "failing for the whole window");
    assert_eq!(long.disabled[0].endpoint_id, endpoint.id);
    assert_eq!(long.disabled[0].fail_since, f.t0 + 10);

    let stored = f
        .store
        .get_endpoint(&app, &endpoint.id)
        .await
        .expect("get endpoint")
        .expect("endpoint");
    assert!(stored.disabled);
    let stats = f
        .store
        .endpoint_stats(&app, &endpoint.id)
        .await
        .expect("stats");
    assert_eq!((stats.pending, stats.canceled), (0, 3));
}

#[tokio::test]
async fn a_success_stops_the_failure_clock() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    for at in 0..3 {
        f.message(&app, None, at).await;
    }
    let claimed = f.claim("lease-a", 5, 10 * HOUR).await;
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);

    f.record(&[(&claimed[0], retry)], 10, &HEALTH).await;
    f.record(&[(&claimed[1], NextStep::Done)], 20, &HEALTH)
        .await;
    let later = f.record(&[(&claimed[2], retry)], 10 + HOUR, &HEALTH).await;
    assert!(
        later.disabled.is_empty(),
        "the clock restarted at the last failure"
    );
    let stored = f
        .store
        .get_endpoint(&app, &endpoint.id)
        .await
        .expect("get endpoint")
        .expect("endpoint");
    assert!(!stored.disabled);
}

#[tokio::test]
async fn a_410_disables_at_once() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    let gone = f.message(&app, None, 0).await;
    let waiting = f.message(&app, None, 1).await;
    let claimed = f.claim("lease-a", 5, HOUR).await;
    let gone_delivery = claimed.iter().find(|d| d.msg_id == gone).expect("claimed");

    let recorded = f
        .record(&[(gone_delivery, NextStep::Gone)], 10, &HEALTH)
        .await;
    assert_eq!(recorded.disabled.len(), 1);
    assert_eq!(recorded.disabled[0].endpoint_id, endpoint.id);
    assert_eq!(recorded.disabled[0].fail_since, f.t0 + 10);
    assert_eq!(f.state(&app, &gone).await, DeliveryStatus::Canceled);
    // The other delivery was in flight: disabling fences it, so its result cannot apply.
    let other = claimed
        .iter()
        .find(|d| d.msg_id == waiting)
        .expect("claimed");
    let late = f
        .record(&[(other, NextStep::RetryAt(f.t0 + HOUR))], 20, &HEALTH)
        .await;
    assert_eq!(late.applied, [false]);
    assert_eq!(f.state(&app, &waiting).await, DeliveryStatus::Canceled);
}

#[tokio::test]
async fn a_recovery_task_runs_in_batches_each_after_the_previous_one_is_done() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    for at in 0..3 {
        f.message(&app, None, at).await;
    }
    let claimed = f.claim("lease-a", 5, HOUR).await;
    let exhausted: Vec<(&ClaimedDelivery, NextStep)> =
        claimed.iter().map(|d| (d, NextStep::Exhausted)).collect();
    f.record(&exhausted, 10, &HEALTH).await;

    let task = BackgroundTask {
        id: TaskId::generate(),
        app_id: app.clone(),
        kind: TaskKind::EndpointRecover,
        status: TaskStatus::Running,
        endpoint_id: endpoint.id.clone(),
        since: f.t0 - HOUR,
        until: f.t0 + HOUR,
        done: 0,
        created_at: f.t0,
        updated_at: f.t0,
    };
    f.store.create_task(&task).await.expect("create task");

    let batch = f.store.run_task_batch(2, f.t0 + 100).await.expect("batch");
    let batch = batch.expect("the task moves");
    assert_eq!((batch.made_due, batch.status), (2, TaskStatus::Running));
    let waiting = f.store.run_task_batch(2, f.t0 + 200).await.expect("batch");
    assert_eq!(waiting, None, "the previous batch is still due");

    let recovered = f.claim("lease-b", 300, HOUR).await;
    assert_eq!(recovered.len(), 2);
    assert!(recovered
        .iter()
        .all(|d| d.trigger_type == TriggerType::Manual && d.attempts_made == 0));
    let waiting = f.store.run_task_batch(2, f.t0 + 400).await.expect("batch");
    assert_eq!(waiting, None, "the previous batch is still in flight");

    let done: Vec<(&ClaimedDelivery, NextStep)> =
        recovered.iter().map(|d| (d, NextStep::Done)).collect();
    f.record(&done, 500, &HEALTH).await;
    let last = f.store.run_task_batch(2, f.t0 + 600).await.expect("batch");
    let last = last.expect("the task moves");
    assert_eq!((last.made_due, last.status), (1, TaskStatus::Finished));
    let stored = f
        .store
        .get_task(&task.id)
        .await
        .expect("get task")
        .expect("task");
    assert_eq!((stored.done, stored.status), (3, TaskStatus::Finished));
    assert_eq!(
        f.store.run_task_batch(2, f.t0 + 700).await.expect("batch"),
        None
    );
}

#[tokio::test]
async fn pruning_removes_old_finished_messages_and_attempts_only() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let delivered = f.message(&app, None, 0).await;
    let claimed = f.claim("lease-a", 5, HOUR).await;
    f.record(&[(&claimed[0], NextStep::Done)], 10, &HEALTH)
        .await;
    let pending = f.message(&app, None, 20).await;

    assert_eq!(
        f.store.prune(f.t0 - HOUR, 100).await.expect("prune"),
        0,
        "nothing is older than an hour before the test"
    );
    // Ids carry the wall clock, so "before" must come after the messages were made.
    let pruned = f
        .store
        .prune(now_millis() + HOUR, 100)
        .await
        .expect("prune");
    assert_eq!(pruned, 2, "the attempt and the delivered message");
    let get = |id: MessageId| {
        let (store, app) = (f.store.clone(), app.clone());
        async move { store.get_message(&app, &id).await.expect("get message") }
    };
    assert!(get(delivered).await.is_none());
    assert!(
        get(pending).await.is_some(),
        "a message with work left stays"
    );
    let attempts = f
        .store
        .list_attempts(&app, &AttemptFilter::default(), &page())
        .await
        .expect("attempts");
    assert!(attempts.is_empty());
}

#[tokio::test]
async fn the_feed_answers_an_applications_messages_in_commit_order() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let other = f.app().await;
    let mut sent = Vec::new();
    for at in 0..3 {
        sent.push(f.message(&app, None, at).await);
        f.message(&other, None, at).await;
    }

    // PostgreSQL answers only positions no running transaction can precede, and the tests of
    // other databases share its transaction ids: wait until nothing holds the feed back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = f
            .store
            .read_feed(&app, FeedPosition::default(), 10)
            .await
            .expect("feed");
        if page.len() == sent.len() || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ids: Vec<&str> = page.iter().map(|(_, m)| m.id.as_str()).collect();
    assert_eq!(ids, sent, "commit order, this application only");
    assert!(page.windows(2).all(|w| w[0].0 < w[1].0), "positions grow");

    let after_second = f.store.read_feed(&app, page[1].0, 10).await.expect("feed");
    let ids: Vec<&str> = after_second.iter().map(|(_, m)| m.id.as_str()).collect();
    assert_eq!(ids, [sent[2].as_str()], "resumes after a position");
    let first_two = f
        .store
        .read_feed(&app, FeedPosition::default(), 2)
        .await
        .expect("feed");
    assert_eq!(first_two.len(), 2);
    assert_eq!(first_two[1].0, page[1].0);
}

#[tokio::test]
async fn the_backlog_counts_deliveries_with_work_and_dates_the_oldest() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    assert_eq!(f.store.backlog().await.expect("backlog").pending, 0);
    let first = f.message(&app, None, 0).await;
    // Ids order messages by creation time; make sure the second sorts after the first.
    tokio::time::sleep(Duration::from_millis(2)).await;
    f.message(&app, None, SECOND).await;
    let backlog = f.store.backlog().await.expect("backlog");
    assert_eq!(backlog.pending, 2);
    assert_eq!(backlog.oldest_created_at, Some(f.t0));
    // Leased deliveries still have work; the oldest one finished leaves the next as oldest.
    let claimed = f.claim("lease", 10, 100).await;
    assert_eq!(f.store.backlog().await.expect("backlog").pending, 2);
    let oldest = claimed
        .iter()
        .find(|d| d.msg_id == first)
        .expect("the first message's delivery");
    f.record(&[(oldest, NextStep::Done)], 20, &HEALTH).await;
    let backlog = f.store.backlog().await.expect("backlog");
    assert_eq!(backlog.pending, 1);
    assert_eq!(backlog.oldest_created_at, Some(f.t0 + SECOND));
}

#[tokio::test]
async fn an_endpoint_keeps_its_newest_check_reports_and_loses_them_with_itself() {
    use hookd::store::checks::{EndpointCheck, KEPT_PER_ENDPOINT};
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    let other = f.endpoint(&app, None).await;
    let check = |endpoint: &Endpoint, n: i64| EndpointCheck {
        app_id: app.clone(),
        endpoint_id: endpoint.id.clone(),
        checked_at: f.t0 + n * SECOND,
        passed: n % 2 == 0,
        report: format!("{{\"n\":{n}}}"),
    };
    let total = KEPT_PER_ENDPOINT as i64 + 3;
    for n in 0..total {
        f.store
            .record_endpoint_check(&check(&endpoint, n))
            .await
            .expect("record");
    }
    f.store
        .record_endpoint_check(&check(&other, 0))
        .await
        .expect("record");
    let kept = f
        .store
        .endpoint_checks(&app, &endpoint.id, 100)
        .await
        .expect("list");
    let expected: Vec<EndpointCheck> = (3..total).rev().map(|n| check(&endpoint, n)).collect();
    assert_eq!(kept, expected, "the newest, newest first");
    let one = f
        .store
        .endpoint_checks(&app, &endpoint.id, 1)
        .await
        .expect("list");
    assert_eq!(one, vec![check(&endpoint, total - 1)]);

    assert!(f
        .store
        .delete_endpoint(&app, &endpoint.id)
        .await
        .expect("delete"));
    let gone = f
        .store
        .endpoint_checks(&app, &endpoint.id, 100)
        .await
        .expect("list");
    assert!(gone.is_empty(), "{gone:?}");
    let untouched = f
        .store
        .endpoint_checks(&app, &other.id, 100)
        .await
        .expect("list");
    assert_eq!(untouched, vec![check(&other, 0)]);
}

#[tokio::test]
async fn an_update_from_a_stale_read_cannot_undo_an_automatic_disable() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    for at in 0..2 {
        f.message(&app, None, at).await;
    }
    let claimed = f.claim("lease-a", 5, 10 * HOUR).await;
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);
    f.record(&[(&claimed[0], retry)], 10, &HEALTH).await;
    // Someone reads the endpoint to edit it; meanwhile it fails for the whole window.
    let get = || async {
        f.store
            .get_endpoint(&app, &endpoint.id)
            .await
            .expect("get")
            .expect("endpoint")
    };
    let mut stale = get().await;
    let read_at = stale.updated_at;
    let disabled = f.record(&[(&claimed[1], retry)], 10 + HOUR, &HEALTH).await;
    assert_eq!(disabled.disabled.len(), 1);
    stale.description = "edited from a stale read".into();
    stale.updated_at = read_at + 1;
    assert!(
        !f.store
            .update_endpoint(&stale, read_at)
            .await
            .expect("update"),
        "a stale write went through"
    );
    let stored = get().await;
    assert!(stored.disabled, "the automatic disable was undone");
    assert_eq!(stored.description, "");
    // Read again, the same edit goes through and keeps the endpoint disabled.
    let mut fresh = stored.clone();
    fresh.description = "edited".into();
    fresh.updated_at = stored.updated_at + 1;
    assert!(f
        .store
        .update_endpoint(&fresh, stored.updated_at)
        .await
        .expect("update"));
    let stored = get().await;
    assert!(stored.disabled && stored.description == "edited");
}

/// Fails every delivery in `claimed` at `t0 + at`, each retried two hours later.
async fn fail_all(f: &Fixture, claimed: &[ClaimedDelivery], at: i64) {
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);
    let outcomes: Vec<(&ClaimedDelivery, NextStep)> = claimed.iter().map(|d| (d, retry)).collect();
    let recorded = f.record(&outcomes, at, &HEALTH).await;
    assert!(recorded.applied.iter().all(|applied| *applied));
}

#[tokio::test]
async fn a_success_on_a_failing_endpoint_makes_its_waiting_deliveries_due_at_once() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    let other_app = f.app().await;
    f.endpoint(&other_app, None).await;
    let waiting = [
        f.message(&app, None, 0).await,
        f.message(&app, None, 1).await,
        f.message(&app, Some("order-1"), 2).await,
    ];
    let held = f.message(&app, Some("order-1"), 3).await;
    let others = f.message(&other_app, None, 4).await;
    // Both endpoints are down: every attempt fails and waits two hours.
    let claimed = f.claim("lease-a", 10, 100).await;
    assert_eq!(claimed.len(), 4, "all but the held one");
    fail_all(&f, &claimed, 20).await;
    assert!(f.claim("lease-b", 30, 100).await.is_empty(), "all wait");

    // The endpoint answers a fresh message: it is back.
    let fresh = f.message(&app, None, 40).await;
    let claimed = f.claim("lease-c", 50, 100).await;
    assert_eq!(msg_ids(&claimed), [fresh.as_str()]);
    let recovered = f
        .record(&[(&claimed[0], NextStep::Done)], 60, &HEALTH)
        .await;
    assert_eq!(
        recovered.caught_up, 3,
        "its waiting deliveries are released"
    );

    let released = f.claim("lease-d", 61, 100).await;
    let mut released_ids = msg_ids(&released);
    released_ids.sort_unstable();
    let mut waiting_ids: Vec<&str> = waiting.iter().map(|id| id.as_str()).collect();
    waiting_ids.sort_unstable();
    assert_eq!(
        released_ids, waiting_ids,
        "due at once, the other endpoint's not among them"
    );
    assert!(released.iter().all(|d| d.endpoint_id == endpoint.id));
    assert!(
        released.iter().all(|d| d.attempts_made == 1),
        "attempt counts are kept"
    );
    assert_eq!(f.state(&app, &held).await, DeliveryStatus::Held);
    assert_eq!(f.state(&other_app, &others).await, DeliveryStatus::Pending);
}

#[tokio::test]
async fn a_success_on_a_healthy_endpoint_releases_nothing() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let poison = f.message(&app, None, 0).await;
    f.message(&app, None, 1).await;
    // One delivery fails while the other succeeds in the same batch: the endpoint works, the
    // failure is the message's own, and it keeps its retry time.
    let claimed = f.claim("lease-a", 10, 100).await;
    let outcomes: Vec<(&ClaimedDelivery, NextStep)> = claimed
        .iter()
        .map(|d| {
            let next = if d.msg_id == poison {
                NextStep::RetryAt(f.t0 + 2 * HOUR)
            } else {
                NextStep::Done
            };
            (d, next)
        })
        .collect();
    let recorded = f.record(&outcomes, 20, &HEALTH).await;
    assert_eq!(recorded.caught_up, 0);

    // Later successes, the first of them past any restart interval, change nothing either.
    for (i, at) in [CATCHUP_RESTART_AFTER_MS, CATCHUP_RESTART_AFTER_MS + 100]
        .into_iter()
        .enumerate()
    {
        f.message(&app, None, at).await;
        let claimed = f.claim(&format!("fresh-{i}"), at + 10, 100).await;
        assert_eq!(claimed.len(), 1, "only the fresh message is due");
        let recorded = f
            .record(&[(&claimed[0], NextStep::Done)], at + 20, &HEALTH)
            .await;
        assert_eq!(recorded.caught_up, 0);
    }
    let after = CATCHUP_RESTART_AFTER_MS + 200;
    assert!(f.claim("lease-c", after, 100).await.is_empty());
    assert_eq!(f.state(&app, &poison).await, DeliveryStatus::Pending);
}

#[tokio::test]
async fn a_recovered_throttled_endpoint_is_released_no_faster_than_its_rate() {
    let f = Fixture::new().await;
    let app = f.app().await;
    // Five per second: one every 200 ms.
    f.endpoint(&app, Some(5)).await;
    for at in 0..3 {
        f.message(&app, None, at).await;
    }
    // Down: each delivery is claimed at its turn and fails.
    for (at, token) in [(10, "a"), (210, "b"), (410, "c")] {
        let claimed = f.claim(token, at, 100).await;
        assert_eq!(claimed.len(), 1, "one per interval");
        fail_all(&f, &claimed, at + 1).await;
    }

    let fresh = f.message(&app, None, 500).await;
    let claimed = f.claim("d", 610, 100).await;
    assert_eq!(msg_ids(&claimed), [fresh.as_str()]);
    let recovered = f
        .record(&[(&claimed[0], NextStep::Done)], 620, &HEALTH)
        .await;
    assert_eq!(recovered.caught_up, 3);
    // Released, but still one interval apart.
    assert!(f.claim("e", 809, 100).await.is_empty(), "too early");
    assert_eq!(f.claim("f", 810, 100).await.len(), 1);
    assert!(f.claim("g", 1009, 100).await.is_empty(), "too early");
    assert_eq!(f.claim("h", 1010, 100).await.len(), 1);
    assert_eq!(f.claim("i", 1210, 100).await.len(), 1);
}

#[tokio::test]
async fn a_catch_up_releases_in_batches_until_nothing_waits() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let waiting = CATCHUP_BATCH + CATCHUP_BATCH / 5;
    for at in 0..waiting {
        f.message(&app, None, at as i64).await;
    }
    let mut at = waiting as i64;
    loop {
        let claimed = f.claim_many("down", at, waiting).await;
        if claimed.is_empty() {
            break;
        }
        fail_all(&f, &claimed, at + 1).await;
        at += 10;
    }

    let fresh = f.message(&app, None, at).await;
    let claimed = f.claim("up", at + 10, 100).await;
    assert_eq!(msg_ids(&claimed), [fresh.as_str()]);
    let first = f
        .record(&[(&claimed[0], NextStep::Done)], at + 20, &HEALTH)
        .await;
    assert_eq!(first.caught_up, CATCHUP_BATCH, "one batch at a time");

    // Draining some makes room for as many more, even when one of them fails again; that one
    // follows its retry schedule.
    let drained = f.claim_many("drain", at + 30, 100).await;
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);
    let outcomes: Vec<(&ClaimedDelivery, NextStep)> = drained
        .iter()
        .enumerate()
        .map(|(i, d)| (d, if i == 0 { retry } else { NextStep::Done }))
        .collect();
    let more = f.record(&outcomes, at + 40, &HEALTH).await;
    assert_eq!(more.caught_up, 100);

    // The last of them; the catch-up ends.
    let drained = f.claim_many("rest", at + 50, waiting).await;
    assert_eq!(drained.len(), CATCHUP_BATCH - 100 + 100);
    let outcomes: Vec<(&ClaimedDelivery, NextStep)> =
        drained.iter().map(|d| (d, NextStep::Done)).collect();
    let last = f.record(&outcomes, at + 60, &HEALTH).await;
    assert_eq!(last.caught_up, waiting - CATCHUP_BATCH - 100);
    let drained = f.claim_many("last", at + 70, waiting).await;
    assert_eq!(drained.len(), last.caught_up);
    let outcomes: Vec<(&ClaimedDelivery, NextStep)> =
        drained.iter().map(|d| (d, NextStep::Done)).collect();
    let done = f.record(&outcomes, at + 80, &HEALTH).await;
    assert_eq!(done.caught_up, 0, "nothing left");
    let backlog = f.store.backlog().await.expect("backlog");
    assert_eq!(
        backlog.pending, 1,
        "the one that failed again waits for its retry"
    );
}

#[tokio::test]
async fn a_flapping_endpoint_releases_a_delivery_again_only_after_the_restart_interval() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let waiting = f.message(&app, None, 0).await;
    let claimed = f.claim("down", 10, 100).await;
    fail_all(&f, &claimed, 20).await;

    // Back: the waiting delivery is released, and fails again (a batch of only failures).
    let fresh = f.message(&app, None, 30).await;
    let claimed = f.claim("up", 40, 100).await;
    assert_eq!(msg_ids(&claimed), [fresh.as_str()]);
    let up = f
        .record(&[(&claimed[0], NextStep::Done)], 50, &HEALTH)
        .await;
    assert_eq!(up.caught_up, 1);
    let released = f.claim("released", 60, 100).await;
    assert_eq!(msg_ids(&released), [waiting.as_str()]);
    fail_all(&f, &released, 70).await;

    // Back again soon after: no new catch-up, the delivery keeps its retry time.
    let recover_soon = |token: &'static str, at: i64| {
        let f = &f;
        let app = &app;
        async move {
            f.message(app, None, at).await;
            let claimed = f.claim(token, at + 10, 100).await;
            assert_eq!(claimed.len(), 1, "only the fresh message is due");
            f.record(&[(&claimed[0], NextStep::Done)], at + 20, &HEALTH)
                .await
        }
    };
    let soon = recover_soon("soon", 100).await;
    assert_eq!(soon.caught_up, 0, "within the restart interval");

    // A failure and a recovery a restart interval after the first: released again.
    let failing = f.message(&app, None, 200).await;
    let claimed = f.claim("fail", 210, 100).await;
    assert_eq!(msg_ids(&claimed), [failing.as_str()]);
    fail_all(&f, &claimed, 220).await;
    let later = recover_soon("later", 50 + CATCHUP_RESTART_AFTER_MS).await;
    assert_eq!(
        later.caught_up, 2,
        "the waiting one and the one that just failed"
    );
}

#[tokio::test]
async fn failures_of_attempts_sent_before_the_recovery_are_released_too() {
    let f = Fixture::new().await;
    let app = f.app().await;
    f.endpoint(&app, None).await;
    let first = f.message(&app, None, 0).await;
    let claimed = f.claim("down", 10, HOUR).await;
    fail_all(&f, &claimed, 20).await;

    // Three attempts are sent while the endpoint is still down, at 40; it recovers at 50.
    let in_flight = [
        f.message(&app, None, 30).await,
        f.message(&app, None, 31).await,
        f.message(&app, None, 32).await,
    ];
    let sent = f.claim("in-flight", 40, HOUR).await;
    assert_eq!(sent.len(), 3);
    let by_msg = |msg: &MessageId| sent.iter().find(|d| d.msg_id == *msg).expect("sent");
    let retry = NextStep::RetryAt(f.t0 + 2 * HOUR);
    // The recovery's batch: one succeeds, one failed before it was fixed.
    let up = f
        .record_started(
            &[
                (by_msg(&in_flight[0]), NextStep::Done),
                (by_msg(&in_flight[1]), retry),
            ],
            40,
            50,
        )
        .await;
    assert_eq!(
        up.caught_up, 2,
        "the waiting one and the one failed in the same batch"
    );
    // The last failure is recorded only after the recovery.
    let late = f
        .record_started(&[(by_msg(&in_flight[2]), retry)], 40, 60)
        .await;
    assert_eq!(
        late.caught_up, 1,
        "sent before the recovery, recorded after it"
    );
    let mut due: Vec<MessageId> = f
        .claim("after", 70, HOUR)
        .await
        .into_iter()
        .map(|d| d.msg_id)
        .collect();
    due.sort();
    let mut expected = vec![first, in_flight[1].clone(), in_flight[2].clone()];
    expected.sort();
    assert_eq!(due, expected);

    // An attempt sent after the recovery that fails keeps its retry time.
    let after = f.claim_many("again", 80, 10).await;
    assert!(after.is_empty());
    let fresh = f.message(&app, None, 90).await;
    let claimed = f.claim("fresh", 100, HOUR).await;
    assert_eq!(msg_ids(&claimed), [fresh.as_str()]);
    let failed = f.record_started(&[(&claimed[0], retry)], 100, 110).await;
    assert_eq!(failed.caught_up, 0);
    assert!(f.claim("later", 120, HOUR).await.is_empty());
}

/// The operational application's endpoint, for the outbox tests: its app is the one about
/// which nothing is written.
async fn operational_target(f: &Fixture) -> (AppId, Endpoint) {
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    (app, endpoint)
}

fn created(app_id: &AppId, endpoint_id: &EndpointId) -> Event {
    Event::Endpoint {
        kind: Kind::EndpointCreated,
        app_id: app_id.clone(),
        app_uid: Some("acme".into()),
        endpoint_id: endpoint_id.clone(),
        endpoint_uid: None,
    }
}

async fn outbox_events(f: &Fixture) -> Vec<Event> {
    let rows = f.store.read_outbox(100).await.expect("read the outbox");
    rows.iter()
        .map(|row| serde_json::from_str(&row.event).expect("an event"))
        .collect()
}

#[tokio::test]
async fn a_result_that_disables_an_endpoint_commits_its_event_with_it() {
    let f = Fixture::new().await;
    let (ops_app, ops_endpoint) = operational_target(&f).await;
    f.store.set_operational(Some(ops_app.clone()));
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    let gone = f.message(&app, None, 0).await;
    let lost = f.message(&app, None, 1).await;
    f.message(&ops_app, None, 2).await;
    let claimed = f.claim("lease-a", 5, HOUR).await;
    let delivery = |msg: &MessageId| claimed.iter().find(|d| d.msg_id == *msg).expect("claimed");
    let ops_delivery = claimed
        .iter()
        .find(|d| d.endpoint_id == ops_endpoint.id)
        .expect("claimed");

    // The 410 disables the endpoint; the operational endpoint's own 410 writes nothing.
    let recorded = f
        .record(
            &[
                (delivery(&gone), NextStep::Gone),
                (ops_delivery, NextStep::Gone),
            ],
            10,
            &HEALTH,
        )
        .await;
    assert_eq!(recorded.disabled.len(), 2);
    assert_eq!(recorded.operational, 1);
    // Committed by the time the store answers, with no publisher running.
    let disabled = DisabledEndpoint {
        app_id: app.clone(),
        endpoint_id: endpoint.id.clone(),
        fail_since: f.t0 + 10,
    };
    assert_eq!(outbox_events(&f).await, [Event::Disabled(disabled.clone())]);

    // An exhausting result whose lease was lost (the disable fenced it) writes nothing.
    let late = f
        .record(&[(delivery(&lost), NextStep::Exhausted)], 20, &HEALTH)
        .await;
    assert_eq!(
        (late.applied.as_slice(), late.operational),
        (&[false][..], 0)
    );
    assert_eq!(outbox_events(&f).await, [Event::Disabled(disabled)]);
}

#[tokio::test]
async fn an_announced_endpoint_change_commits_its_event_with_it() {
    let f = Fixture::new().await;
    let (ops_app, _) = operational_target(&f).await;
    f.store.set_operational(Some(ops_app));
    let app = f.app().await;
    let mut endpoint = f.endpoint(&app, None).await;
    endpoint.id = EndpointId::generate();
    let event = created(&app, &endpoint.id);
    let made = f
        .store
        .change_endpoint(store::EndpointChange::Create(&endpoint), &event)
        .await
        .expect("create");
    assert!(made);
    assert_eq!(outbox_events(&f).await, std::slice::from_ref(&event));

    // A compare-and-set that loses writes no event.
    let mut stale = endpoint.clone();
    stale.updated_at = f.t0 + 1;
    let update = store::EndpointChange::Update {
        endpoint: &stale,
        read_at: f.t0 - 1,
    };
    let changed = f
        .store
        .change_endpoint(update, &event)
        .await
        .expect("update");
    assert!(!changed);
    assert_eq!(outbox_events(&f).await, std::slice::from_ref(&event));

    // A change that fails (its uid is taken) rolls its event back with it.
    let mut first = endpoint.clone();
    first.id = EndpointId::generate();
    first.uid = Some(Uid::parse("primary").expect("a uid"));
    let mut second = first.clone();
    second.id = EndpointId::generate();
    f.store
        .change_endpoint(store::EndpointChange::Create(&first), &event)
        .await
        .expect("create");
    let taken = f
        .store
        .change_endpoint(store::EndpointChange::Create(&second), &event)
        .await;
    assert!(
        matches!(taken, Err(store::StoreError::Conflict(_))),
        "{taken:?}"
    );
    assert_eq!(outbox_events(&f).await, [event.clone(), event]);
}

#[tokio::test]
async fn publishing_commits_the_messages_and_removes_their_rows_once() {
    let f = Fixture::new().await;
    let (ops_app, ops_endpoint) = operational_target(&f).await;
    f.store.set_operational(Some(ops_app.clone()));
    let app = f.app().await;
    for _ in 0..3 {
        let endpoint = f.endpoint(&app, None).await;
        let event = created(&app, &EndpointId::generate());
        let mut other = endpoint.clone();
        other.id = EndpointId::generate();
        f.store
            .change_endpoint(store::EndpointChange::Create(&other), &event)
            .await
            .expect("create");
    }
    let rows = f.store.read_outbox(100).await.expect("read");
    assert_eq!(rows.len(), 3);
    // What a node publishes for these rows: messages of its own making (fresh ids).
    let published = || -> Vec<store::Published> {
        rows.iter()
            .map(|row| store::Published {
                id: row.id,
                message: Some(Message::new(
                    ops_app.clone(),
                    EventTypeName::parse("endpoint.created").expect("an event type"),
                    row.event.clone().into(),
                    f.t0,
                    24 * HOUR,
                )),
            })
            .collect()
    };
    let (first, second) = (published(), published());

    // Two publishers of the same rows at once, as two nodes would: each row goes once.
    let (a, b) = tokio::join!(
        f.store.publish_outbox(&ops_endpoint.id, &first),
        f.store.publish_outbox(&ops_endpoint.id, &second),
    );
    let mut taken = [a.expect("publish"), b.expect("publish")].concat();
    taken.sort_unstable();
    let mut ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    ids.sort_unstable();
    assert_eq!(taken, ids, "every row published exactly once");
    assert!(f.store.read_outbox(100).await.expect("read").is_empty());
    let messages = f
        .store
        .list_messages(&ops_app, &Default::default(), &page())
        .await
        .expect("list");
    let deliveries = f.claim_many("lease-ops", 5, 100).await;
    assert_eq!(messages.len(), 3, "one message per row");
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d.endpoint_id == ops_endpoint.id)
            .count(),
        3,
        "one delivery to the operational endpoint per message"
    );
    // Publishing them again finds nothing to publish.
    let again = f
        .store
        .publish_outbox(&ops_endpoint.id, &published())
        .await
        .expect("publish");
    assert!(again.is_empty());
    let messages = f
        .store
        .list_messages(&ops_app, &Default::default(), &page())
        .await
        .expect("list");
    assert_eq!(messages.len(), 3, "published again");
}

#[tokio::test]
async fn nothing_is_written_to_the_outbox_while_operational_webhooks_are_off() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let mut endpoint = f.endpoint(&app, None).await;
    endpoint.id = EndpointId::generate();
    let made = f
        .store
        .change_endpoint(
            store::EndpointChange::Create(&endpoint),
            &created(&app, &endpoint.id),
        )
        .await
        .expect("create");
    assert!(made, "the change itself is made");
    let gone = f.message(&app, None, 0).await;
    let claimed = f.claim("lease-a", 5, HOUR).await;
    let delivery = claimed.iter().find(|d| d.msg_id == gone).expect("claimed");
    let recorded = f.record(&[(delivery, NextStep::Gone)], 10, &HEALTH).await;
    assert_eq!((recorded.disabled.len(), recorded.operational), (1, 0));

    // Turned on and off again, as a restart without the settings would.
    f.store.set_operational(Some(AppId::generate()));
    f.store.set_operational(None);
    let delete = store::EndpointChange::Delete {
        app_id: &app,
        endpoint_id: &endpoint.id,
    };
    let deleted = f
        .store
        .change_endpoint(delete, &created(&app, &endpoint.id))
        .await
        .expect("delete");
    assert!(deleted);
    assert!(f.store.read_outbox(100).await.expect("read").is_empty());
}

/// Claims what is due at `t0 + at` as the node `owner`, held a second.
async fn claim_as(f: &Fixture, owner: &str, token: &str, at: i64) -> Vec<ClaimedDelivery> {
    let lease = Lease::new(owner, token, f.t0 + at, f.t0 + at + SECOND);
    f.store.claim_due(&lease, 50).await.expect("claim")
}

/// Reports a node of the deployment, heartbeating at `t0 + at`.
async fn heartbeat(f: &Fixture, node: &str, at: i64) {
    let report = store::NodeReport {
        id: node.into(),
        role: "all".into(),
        version: "test".into(),
        started_at: f.t0,
        heartbeat_at: f.t0 + at,
        in_flight: 0,
    };
    f.store.report_node(&report).await.expect("report node");
}

#[tokio::test]
async fn a_listen_endpoint_pinned_to_a_live_node_is_claimed_by_that_node_only() {
    let f = Fixture::new().await;
    let app = f.app().await;
    let endpoint = f.endpoint(&app, None).await;
    let postgres = crate::harness::backend() == crate::harness::Backend::Postgres;
    heartbeat(&f, "node-a", 0).await;
    heartbeat(&f, "node-b", 0).await;
    assert!(f
        .store
        .pin_listen_endpoint(&app, &endpoint.id, "node-a", f.t0)
        .await
        .expect("pin"));
    assert!(
        !f.store
            .pin_listen_endpoint(&app, &EndpointId::generate(), "node-a", f.t0)
            .await
            .expect("pin"),
        "no such endpoint"
    );
    let msg = f.message(&app, None, 0).await;

    if postgres {
        // Another node passes over it, and does not wake for it either.
        assert!(claim_as(&f, "node-b", "lease-b", 1).await.is_empty());
        let next = f.store.next_due(&[], "node-b").await.expect("next due");
        assert_eq!(next, None, "node B has nothing to wait for");
    }
    let claimed = claim_as(&f, "node-a", "lease-a", 1).await;
    assert_eq!(msg_ids(&claimed), [msg.as_str()], "the holder claims it");

    // It fails (the CLI did not answer); the session re-opens on node B, which makes it due
    // at once there, an hour before its retry.
    f.record(&[(&claimed[0], NextStep::RetryAt(f.t0 + HOUR))], 2, &HEALTH)
        .await;
    assert!(f
        .store
        .pin_listen_endpoint(&app, &endpoint.id, "node-b", f.t0 + 3)
        .await
        .expect("re-pin"));
    if postgres {
        assert!(claim_as(&f, "node-a", "lease-a2", 4).await.is_empty());
    }
    let moved = claim_as(&f, "node-b", "lease-b2", 4).await;
    assert_eq!(
        msg_ids(&moved),
        [msg.as_str()],
        "due at once on the new holder"
    );

    // Node B falls silent: its pin no longer keeps the others out.
    f.record(&[(&moved[0], NextStep::RetryAt(f.t0 + 5))], 5, &HEALTH)
        .await;
    let later = 5 + store::LISTEN_HOLDER_SILENT_MS + SECOND;
    heartbeat(&f, "node-a", later).await;
    let taken = claim_as(&f, "node-a", "lease-a3", later).await;
    assert_eq!(
        msg_ids(&taken),
        [msg.as_str()],
        "a dead holder's pin is ignored"
    );
}
