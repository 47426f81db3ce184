//! The delivery engine's side before an attempt: claiming due deliveries under a lease
//! (what happens to them is [`crate::store::claim`]'s and [`crate::store::throttle`]'s call),
//! giving leases back, and when work is next due.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::catalog;
use super::connection::db_error;
use super::rows::{self, MESSAGE_COLUMNS};
use crate::domain::time::now_millis;
use crate::domain::{AppId, EndpointId, MessageId};
use crate::store::cipher::SecretCipher;
use crate::store::claim::{self, LeasedRow};
use crate::store::status::{PENDING, SENDING};
use crate::store::throttle;
use crate::store::{
    Backlog, ClaimedDelivery, DeliveryStatus, Endpoint, Lease, Message, StoreResult, TriggerType,
    LISTEN_HOLDER_SILENT_MS, LISTEN_RELEASE_LIMIT,
};

/// The rows of endpoints (`e`) pinned to a live node other than `node` (the claiming node): a
/// listen session's endpoint, whose deliveries only the node holding the session can make
/// (`store::LISTEN_HOLDER_SILENT_MS`). `extra` narrows them further (or is empty).
fn pinned_elsewhere_rows(node: &str, now: &str, extra: &str) -> String {
    format!(
        "FROM endpoints e JOIN nodes n ON n.id = e.listen_node
         WHERE e.listen_node IS NOT NULL AND e.listen_node <> {node}
         AND n.heartbeat_at >= {now} - {LISTEN_HOLDER_SILENT_MS} {extra}"
    )
}

/// The endpoints pinned to another live node ([`pinned_elsewhere_rows`]), as an array.
/// Uncorrelated, so PostgreSQL computes it once per statement (an InitPlan) from the partial
/// index `endpoints_listen_node`, which holds only pinned endpoints, usually none.
fn pinned_elsewhere(node: &str, now: &str) -> String {
    format!(
        "ARRAY(SELECT e.id {})",
        pinned_elsewhere_rows(node, now, "")
    )
}

/// The condition that walks one endpoint's deliveries due up to `at` on the
/// `(endpoint_id, next_attempt_at)` index, from its earliest; its statement orders by both
/// columns.
///
/// The bound is a row comparison, which only that index can serve. Written as
/// `endpoint_id = … AND next_attempt_at <= …`, PostgreSQL could plan it on the global due
/// index instead, filtering by endpoint, whenever its statistics showed few due rows: then,
/// while a recovered endpoint's backlog fell due, every other endpoint's walk read all of it
/// (in a scratch database with 300,000 rows of another endpoint due, 42 to 82 ms a walk
/// against 0.1 to 0.3 ms; BENCHMARKS.md, "second round" and "third round").
pub(super) fn endpoint_due_up_to(endpoint: &str, at: &str) -> String {
    format!(
        "endpoint_id = {endpoint} AND next_attempt_at IS NOT NULL
         AND (endpoint_id, next_attempt_at) <= ({endpoint}, {at})"
    )
}

/// The condition that walks one endpoint's deliveries from `from` on, on the same index and
/// for the same reason as [`endpoint_due_up_to`]. Both bounds are row comparisons, and the
/// endpoint is not also given as an equality: with one, PostgreSQL 15 starts the scan at the
/// endpoint's first entry rather than at `from`, and reads every row due before it.
pub(super) fn endpoint_waiting_from(endpoint: &str, from: &str) -> String {
    format!(
        "next_attempt_at IS NOT NULL AND (endpoint_id, next_attempt_at) >= ({endpoint}, {from})
         AND (endpoint_id, next_attempt_at) <= ({endpoint}, {})",
        i64::MAX
    )
}

/// The oldest due deliveries, in one walk of the due index (used when no endpoint is passed
/// over or limited: `$6` and `$8` are empty), at most `$7` of any one endpoint (see
/// [`crate::store::EndpointRoom`]), and `$5` in all. Rows locked beyond that are unlocked when
/// the statement's transaction ends.
///
/// The walk must read the due index in order, whatever PostgreSQL's estimates say: with a
/// large backlog falling due between two `ANALYZE`s they are far off, and a plan that collects
/// every due row and sorts them took 636 to 763 ms with 580,000 rows due, against 2 to 11 ms
/// for the ordered walk (BENCHMARKS.md, "third round"). So:
/// - endpoints pinned to another node are left out with `NOT EXISTS`, which PostgreSQL
///   estimates as leaving nearly every row; `NOT (endpoint_id = ANY(ARRAY(…)))` was estimated
///   to leave one row in a thousand, which made sorting them look cheap;
/// - the walk's `LIMIT` is the literal `walk`: for a parameter the generic plan assumes a tenth
///   of the rows. [`claim_due`] takes the walk of the next power of two at or above its limit,
///   so a handful of statements serve every limit.
fn oldest_due(walk: usize) -> String {
    format!(
        "SELECT id FROM (
            SELECT id, next_attempt_at,
                   ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS n
            FROM (SELECT d.id, d.endpoint_id, d.next_attempt_at FROM deliveries d
                  WHERE d.next_attempt_at <= $4
                  AND NOT EXISTS (SELECT 1 {})
                  ORDER BY d.next_attempt_at LIMIT {walk} FOR UPDATE OF d SKIP LOCKED) locked
         ) ranked
         WHERE n <= $7 ORDER BY next_attempt_at LIMIT $5",
        pinned_elsewhere_rows("$1", "$4", "AND e.id = d.endpoint_id")
    )
}

/// The longest walk of [`oldest_due`]: a claim with a larger limit takes at most this many.
const MAX_WALK: usize = 1024;

/// The oldest due deliveries of the endpoints not passed over (`$6`): from each endpoint's own
/// due order as many as it has room for (`$8` and `$9` name the endpoints with less room than
/// `$7`, and theirs), then the oldest of those. Walking the global due order instead would
/// read every due row of a passed-over endpoint first. (Rows locked beyond the limit are
/// unlocked when the statement's transaction ends.)
fn oldest_due_of_others() -> String {
    format!(
        "SELECT d.id FROM endpoints e
         LEFT JOIN unnest($8::text[], $9::int8[]) AS r(id, room) ON r.id = e.id
         CROSS JOIN LATERAL (
            SELECT id, next_attempt_at FROM deliveries WHERE {}
            ORDER BY endpoint_id, next_attempt_at LIMIT LEAST($5, COALESCE(r.room, $7))
            FOR UPDATE SKIP LOCKED) d
         WHERE NOT (e.id = ANY($6::text[])) AND NOT (e.id = ANY({}))
         ORDER BY d.next_attempt_at LIMIT $5",
        endpoint_due_up_to("e.id", "$4"),
        pinned_elsewhere("$1", "$4")
    )
}

/// The claim statement around `due_rows` (a query answering the ids to lease). Built once per
/// kind (below): claiming is the hottest path, and the text never changes.
fn claim_statement(due_rows: &str) -> String {
    format!(
        "WITH due AS ({due_rows}), claimed AS (
            UPDATE deliveries d SET status = {SENDING}, lease_owner = $1, lease_token = $2,
                   next_attempt_at = $3, updated_at = $4
            FROM due WHERE d.id = due.id
            RETURNING d.id AS delivery_id, d.msg_id, d.endpoint_id, d.attempts, d.trigger_type,
                      d.seq
         )
         SELECT c.delivery_id, c.endpoint_id, c.attempts, c.trigger_type, {MESSAGE_COLUMNS}
         FROM claimed c JOIN messages m ON m.id = c.msg_id
         JOIN message_payloads p ON p.msg_id = c.msg_id
         ORDER BY c.seq"
    )
}

/// The claims of [`oldest_due`], one for each walk: 1, 2, 4, … [`MAX_WALK`].
static CLAIM_OLDEST_DUE: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=MAX_WALK.trailing_zeros())
        .map(|power| claim_statement(&oldest_due(1 << power)))
        .collect()
});
static CLAIM_OLDEST_DUE_OF_OTHERS: LazyLock<String> =
    LazyLock::new(|| claim_statement(&oldest_due_of_others()));

/// Leases due deliveries: pending ones whose time has come and sending ones whose lease
/// expired. `SKIP LOCKED` lets every node claim at once without waiting on each other's rows.
pub async fn claim_due(
    pool: &PgPool,
    cipher: &SecretCipher,
    lease: &Lease,
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let room = &lease.endpoint_room;
    let statement: &str = if lease.skip_endpoints.is_empty() && room.limited.is_empty() {
        let walk = limit.next_power_of_two().min(MAX_WALK);
        &CLAIM_OLDEST_DUE[walk.trailing_zeros() as usize]
    } else {
        &CLAIM_OLDEST_DUE_OF_OTHERS
    };
    let (limited, rooms): (Vec<&str>, Vec<i64>) = room
        .limited
        .iter()
        .map(|(id, room)| (id.as_str(), i64::try_from(*room).unwrap_or(i64::MAX)))
        .unzip();
    let due = sqlx::query(statement)
        .bind(&lease.owner)
        .bind(&lease.token)
        .bind(lease.until)
        .bind(lease.now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(&lease.skip_endpoints)
        .bind(room.each_sql())
        .bind(limited)
        .bind(rooms)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }

    // The claim answers each delivery with its message; deliveries of one batch often share
    // messages and endpoints, so each is kept and loaded once.
    let mut leased = Vec::with_capacity(due.len());
    let mut messages: HashMap<MessageId, Message> = HashMap::new();
    for row in &due {
        let message = rows::message(row).map_err(db_error)?;
        leased.push(LeasedRow {
            delivery_id: row.try_get("delivery_id").map_err(db_error)?,
            msg_id: message.id.clone(),
            endpoint_id: row.try_get("endpoint_id").map_err(db_error)?,
            attempts: u32::try_from(row.try_get::<i32, _>("attempts").map_err(db_error)?)
                .unwrap_or(0),
            trigger: TriggerType::from_code(i64::from(
                row.try_get::<i16, _>("trigger_type").map_err(db_error)?,
            )),
        });
        messages.entry(message.id.clone()).or_insert(message);
    }
    let endpoint_ids: Vec<String> = claim::distinct(leased.iter().map(|d| d.endpoint_id.as_str()))
        .into_iter()
        .map(str::to_string)
        .collect();
    let endpoints: HashMap<EndpointId, Endpoint> =
        catalog::endpoints_by_id(pool, cipher, &endpoint_ids)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
    let sorted = claim::sort(leased, lease, &endpoints, &messages);
    let to_cancel = sorted.cancel;
    if !to_cancel.is_empty() {
        sqlx::query(
            "UPDATE deliveries SET status = $3, next_attempt_at = NULL, lease_owner = NULL,
             lease_token = NULL, updated_at = $4 WHERE id = ANY($1) AND lease_token = $2",
        )
        .bind(&to_cancel)
        .bind(&lease.token)
        .bind(DeliveryStatus::Canceled as i16)
        .bind(lease.now)
        .execute(pool)
        .await
        .map_err(db_error)?;
    }
    apply_throttles(pool, sorted.kept, &sorted.rates, lease.now).await
}

/// Keeps, of each throttled endpoint's claimed deliveries, those its schedule allows now, and
/// gives the others back, due at their planned times. The endpoint's row lock makes nodes take
/// turns with its schedule.
async fn apply_throttles(
    pool: &PgPool,
    claimed: Vec<ClaimedDelivery>,
    rates: &HashMap<EndpointId, u32>,
    now: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    if rates.is_empty() {
        return Ok(claimed);
    }
    let mut deferred = Vec::new();
    let mut tx = pool.begin().await.map_err(db_error)?;
    for group in throttle::throttled_groups(&claimed, rates) {
        let tat: i64 =
            sqlx::query_scalar("SELECT throttle_tat FROM endpoints WHERE id = $1 FOR UPDATE")
                .bind(group.endpoint_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        let (tat, later) = group.schedule(tat, now);
        sqlx::query("UPDATE endpoints SET throttle_tat = $2 WHERE id = $1")
            .bind(group.endpoint_id)
            .bind(tat)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for (i, at) in later {
            sqlx::query(&format!(
                "UPDATE deliveries SET status = {PENDING}, next_attempt_at = $3, lease_owner = NULL,
                 lease_token = NULL WHERE id = $1 AND lease_token = $2"
            ))
            .bind(&claimed[i].delivery_id)
            .bind(&claimed[i].lease_token)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            deferred.push(i);
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(throttle::without_deferred(claimed, &deferred))
}

/// Returns claimed deliveries unattempted, due again at `at`, where their lease still holds.
pub async fn give_back(pool: &PgPool, deliveries: &[ClaimedDelivery], at: i64) -> StoreResult<()> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.delivery_id.as_str()).collect();
    let tokens: Vec<&str> = deliveries.iter().map(|d| d.lease_token.as_str()).collect();
    sqlx::query(&format!(
        "UPDATE deliveries d SET status = {PENDING}, next_attempt_at = $3, lease_owner = NULL,
         lease_token = NULL
         FROM UNNEST($1::text[], $2::text[]) AS g(id, token)
         WHERE d.id = g.id AND d.lease_token = g.token"
    ))
    .bind(&ids)
    .bind(&tokens)
    .bind(at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// When the next delivery this node may claim is due (`$1` the endpoints passed over, `$2` the
/// node, `$3` now); built once, like the claim statements.
static NEXT_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL
         AND NOT (endpoint_id = ANY($1::text[])) AND NOT (endpoint_id = ANY({}))",
        pinned_elsewhere("$2", "$3")
    )
});
static NEXT_DUE_OF_OTHERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT MIN(d.next_attempt_at) FROM endpoints e CROSS JOIN LATERAL (
            SELECT next_attempt_at FROM deliveries WHERE {}
            ORDER BY endpoint_id, next_attempt_at LIMIT 1) d
         WHERE NOT (e.id = ANY($1::text[])) AND NOT (e.id = ANY({}))",
        endpoint_due_up_to("e.id", &i64::MAX.to_string()),
        pinned_elsewhere("$2", "$3")
    )
});

pub async fn next_due(
    pool: &PgPool,
    skip_endpoints: &[EndpointId],
    node: &str,
) -> StoreResult<Option<i64>> {
    // As in claiming, endpoints passed over are left out by asking each other endpoint, and
    // endpoints pinned to another node are left out as well: their due rows are that node's
    // work, and counting them here would make this node look again at once, and spin.
    let statement: &str = if skip_endpoints.is_empty() {
        &NEXT_DUE
    } else {
        &NEXT_DUE_OF_OTHERS
    };
    sqlx::query_scalar(statement)
        .bind(skip_endpoints)
        .bind(node)
        .bind(now_millis())
        .fetch_one(pool)
        .await
        .map_err(db_error)
}

/// Pins a listen session's endpoint to `node` (see `Store::pin_listen_endpoint`).
pub async fn pin_listen_endpoint(
    pool: &PgPool,
    app_id: &AppId,
    endpoint_id: &EndpointId,
    node: &str,
    now: i64,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let pinned = sqlx::query(
        "UPDATE endpoints SET listen_node = $3, disabled = FALSE, first_failure_at = NULL,
         updated_at = $4 WHERE app_id = $1 AND id = $2",
    )
    .bind(app_id)
    .bind(endpoint_id)
    .bind(node)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?
    .rows_affected()
        > 0;
    if pinned {
        sqlx::query(&format!(
            "UPDATE deliveries SET next_attempt_at = $2 WHERE id IN (
                SELECT id FROM deliveries WHERE endpoint_id = $1 AND status = {PENDING}
                AND next_attempt_at > $2 ORDER BY next_attempt_at LIMIT {LISTEN_RELEASE_LIMIT}
                FOR UPDATE SKIP LOCKED)"
        ))
        .bind(endpoint_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(pinned)
}

pub async fn backlog(pool: &PgPool) -> StoreResult<Backlog> {
    let row = sqlx::query(
        // The oldest pending message is the smallest pending message id (ids sort by creation
        // time): one step into `deliveries_pending_by_msg`, not a join.
        "SELECT (SELECT COUNT(*) FROM deliveries WHERE next_attempt_at IS NOT NULL) AS pending,
                (SELECT m.created_at FROM messages m WHERE m.id =
                    (SELECT MIN(msg_id) FROM deliveries WHERE next_attempt_at IS NOT NULL)) AS oldest,
                (SELECT COUNT(*) FROM endpoints WHERE disabled) AS disabled",
    )
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    let count = |column: &str| -> StoreResult<u64> {
        let value: i64 = row.try_get(column).map_err(db_error)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    Ok(Backlog {
        pending: count("pending")?,
        oldest_created_at: row.try_get("oldest").map_err(db_error)?,
        endpoints_disabled: count("disabled")?,
    })
}

/// Makes the deliveries leased by `owner` due again now.
pub async fn release_leases(pool: &PgPool, owner: &str) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE deliveries SET status = {PENDING}, next_attempt_at = $1, lease_owner = NULL,
         lease_token = NULL WHERE status = {SENDING} AND lease_owner = $2"
    ))
    .bind(now_millis())
    .bind(owner)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}
