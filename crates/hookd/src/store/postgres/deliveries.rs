//! Queries for messages, their fan-out into deliveries, claiming, results, attempts and pruning.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::catalog;
use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, ATTEMPT_COLUMNS, ENDPOINT_COLUMNS, MESSAGE_COLUMNS};
use crate::domain::ids::{lower_bound_at, new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::cipher::SecretCipher;
use crate::store::claim::{self, LeasedRow};
use crate::store::health;
use crate::store::outcome::{self, KeyOf};
use crate::store::status::{CANCELED, FAILED, HELD, PENDING, SENDING, SUCCESS};
use crate::store::throttle;
use crate::store::trigger::MANUAL;
use crate::store::{
    Attempt, AttemptFilter, AttemptResult, Backlog, ClaimedDelivery, DeliveryState, DeliveryStatus,
    DisabledEndpoint, Endpoint, FeedPosition, HealthPolicy, Lease, Message, MessageFilter,
    PageRequest, Recorded, StoreResult, TriggerType,
};

pub async fn backlog(pool: &PgPool) -> StoreResult<Backlog> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS pending, MIN(m.created_at) AS oldest,
                (SELECT COUNT(*) FROM endpoints WHERE disabled) AS disabled
         FROM deliveries d JOIN messages m ON m.id = d.msg_id
         WHERE d.next_attempt_at IS NOT NULL",
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

pub async fn get_message(
    pool: &PgPool,
    app_id: &str,
    msg_id: &str,
) -> StoreResult<Option<Message>> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN message_payloads p ON p.msg_id = m.id
         WHERE m.app_id = $1 AND (m.id = $2 OR m.event_id = $2) LIMIT 1"
    ))
    .bind(app_id)
    .bind(msg_id)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::message)
        .transpose()
        .map_err(db_error)
}

pub async fn list_messages(
    pool: &PgPool,
    app_id: &str,
    filter: &MessageFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Message>> {
    let mut query = ListQuery::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN message_payloads p ON p.msg_id = m.id
         WHERE"
    ));
    query.bind(" m.app_id = ", app_id.to_string());
    if let Some(types) = &filter.event_types {
        query
            .bind(" AND m.event_type = ANY(", types.clone())
            .push(")");
    }
    if let Some(channel) = &filter.channel {
        query
            .bind(" AND ", channel.clone())
            .push(" = ANY(m.channels)");
    }
    if let Some(before) = filter.before {
        query.bind(" AND m.created_at < ", before);
    }
    if let Some(after) = filter.after {
        query.bind(" AND m.created_at > ", after);
    }
    query.fetch(pool, page, "m.id", rows::message).await
}

/// The feed of an application after `after`, in (transaction id, sequence) order. Only rows
/// whose transaction id is below the xmin of the statement's snapshot are read: every
/// transaction before that xmin has finished, so nothing can still commit in front of them.
/// A transaction that stays open holds the feed back until it ends; it never reorders it.
pub async fn read_feed(
    pool: &PgPool,
    app_id: &str,
    after: FeedPosition,
    limit: usize,
) -> StoreResult<Vec<(FeedPosition, Message)>> {
    let rows = sqlx::query(&format!(
        "SELECT m.feed_xid::text::bigint AS feed_group, m.feed_seq, {MESSAGE_COLUMNS}
         FROM messages m JOIN message_payloads p ON p.msg_id = m.id
         WHERE m.app_id = $1
           AND (m.feed_xid, m.feed_seq) > ($2::bigint::text::xid8, $3)
           AND m.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY m.feed_xid, m.feed_seq
         LIMIT $4"
    ))
    .bind(app_id)
    .bind(after.group)
    .bind(after.seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let position = FeedPosition {
                group: row.try_get("feed_group")?,
                seq: row.try_get("feed_seq")?,
            };
            Ok((position, rows::message(row)?))
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db_error)
}

/// The oldest due deliveries, in one walk of the due index (`$6`, the endpoints to pass over,
/// is empty).
const OLDEST_DUE: &str = "SELECT id FROM deliveries WHERE next_attempt_at <= $4
    AND NOT (endpoint_id = ANY($6::text[]))
    ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED";

/// The oldest due deliveries of the endpoints not passed over (`$6`): up to the limit from each
/// endpoint's own due order, then the oldest of those. Walking the global due order instead
/// would read every due row of a passed-over endpoint first. (Rows locked beyond the limit are
/// unlocked when the statement's transaction ends.)
const OLDEST_DUE_OF_OTHERS: &str = "SELECT d.id FROM endpoints e
    CROSS JOIN LATERAL (
        SELECT id, next_attempt_at FROM deliveries
        WHERE endpoint_id = e.id AND next_attempt_at <= $4
        ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED) d
    WHERE NOT (e.id = ANY($6::text[]))
    ORDER BY d.next_attempt_at LIMIT $5";

/// Leases due deliveries: pending ones whose time has come and sending ones whose lease
/// expired. `SKIP LOCKED` lets every node claim at once without waiting on each other's rows.
pub async fn claim_due(
    pool: &PgPool,
    cipher: &SecretCipher,
    lease: &Lease,
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let due_rows = if lease.skip_endpoints.is_empty() {
        OLDEST_DUE
    } else {
        OLDEST_DUE_OF_OTHERS
    };
    let due = sqlx::query(&format!(
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
    ))
    .bind(&lease.owner)
    .bind(&lease.token)
    .bind(lease.until)
    .bind(lease.now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(&lease.skip_endpoints)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }

    // The claim answers each delivery with its message; deliveries of one batch often share
    // messages and endpoints, so each is kept and loaded once.
    let mut leased = Vec::with_capacity(due.len());
    let mut messages: HashMap<String, Message> = HashMap::new();
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
    let endpoints: HashMap<String, Endpoint> =
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
    rates: &HashMap<String, u32>,
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

/// Makes the earliest held delivery of each finished keyed delivery's key due, under the key's
/// lock (see `ingest::lock_key`), once no earlier delivery of the key is unfinished. Keys are
/// locked in order, so two nodes recording at once cannot deadlock. Answers how many it released.
async fn release_held(
    tx: &mut sqlx::PgConnection,
    finished_ids: &[&str],
    now: i64,
) -> StoreResult<usize> {
    let keyed: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT app_id, ordering_key, endpoint_id FROM deliveries
         WHERE id = ANY($1) AND ordering_key IS NOT NULL
           AND status IN ({SUCCESS}, {FAILED}, {CANCELED})"
    ))
    .bind(finished_ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let keys = outcome::keys_to_release(keyed.iter().map(|(app_id, key, endpoint_id)| KeyOf {
        app_id,
        ordering_key: key,
        endpoint_id,
    }));
    let mut released = 0;
    let mut locked: Option<(&str, &str)> = None;
    for KeyOf {
        app_id,
        ordering_key: key,
        endpoint_id,
    } in keys
    {
        if locked != Some((app_id, key)) {
            super::ingest::lock_key(&mut *tx, app_id, key).await?;
            locked = Some((app_id, key));
        }
        let done = sqlx::query(&format!(
            "UPDATE deliveries SET status = {PENDING}, next_attempt_at = $3, updated_at = $3
             WHERE id = (SELECT id FROM deliveries WHERE endpoint_id = $1
                         AND ordering_key = $2 AND status = {HELD} ORDER BY seq LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = $1
                               AND ordering_key = $2 AND status IN ({PENDING}, {SENDING}))"
        ))
        .bind(endpoint_id)
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        released += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    Ok(released)
}

pub async fn next_due(pool: &PgPool, skip_endpoints: &[String]) -> StoreResult<Option<i64>> {
    // As in claiming, endpoints passed over are left out by asking each other endpoint.
    sqlx::query_scalar(if skip_endpoints.is_empty() {
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL
         AND NOT (endpoint_id = ANY($1::text[]))"
    } else {
        "SELECT MIN(d.next_attempt_at) FROM endpoints e CROSS JOIN LATERAL (
            SELECT next_attempt_at FROM deliveries
            WHERE endpoint_id = e.id AND next_attempt_at IS NOT NULL
            ORDER BY next_attempt_at LIMIT 1) d
         WHERE NOT (e.id = ANY($1::text[]))"
    })
    .bind(skip_endpoints)
    .fetch_one(pool)
    .await
    .map_err(db_error)
}

/// Applies results whose lease still holds and logs an attempt for each that did (one
/// statement), then moves the failure clocks of their endpoints (see [`health`]), in one
/// transaction.
pub async fn record_attempts(
    pool: &PgPool,
    results: &[AttemptResult],
    policy: &HealthPolicy,
) -> StoreResult<Recorded> {
    // Rows are locked in id order, so two nodes recording overlapping batches (possible only
    // after a lease expired) do not deadlock.
    let mut sorted: Vec<&AttemptResult> = results.iter().collect();
    sorted.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    let n = sorted.len();
    let now = now_millis();
    let mut ids = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut next_at: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut attempt_ids = Vec::with_capacity(n);
    let mut app_ids = Vec::with_capacity(n);
    let mut msg_ids = Vec::with_capacity(n);
    let mut endpoint_ids = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut successes = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut responses = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut triggers = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    for result in sorted {
        let (status, next) = outcome::after_attempt(result.next);
        let a: &Attempt = &result.attempt;
        ids.push(result.delivery_id.as_str());
        tokens.push(result.lease_token.as_str());
        statuses.push(status as i16);
        next_at.push(next);
        attempt_ids.push(a.id.as_str());
        app_ids.push(result.app_id.as_str());
        msg_ids.push(a.msg_id.as_str());
        endpoint_ids.push(a.endpoint_id.as_str());
        urls.push(a.url.as_str());
        successes.push(a.success);
        codes.push(i32::try_from(a.response_status_code).unwrap_or(0));
        responses.push(a.response.as_str());
        durations.push(a.response_duration_ms);
        triggers.push(a.trigger_type as i16);
        created.push(a.created_at);
    }
    let mut tx = pool.begin().await.map_err(db_error)?;
    let applied: Vec<String> = sqlx::query_scalar(&format!(
        "WITH results AS (
            SELECT * FROM UNNEST($1::text[], $2::text[], $3::smallint[], $4::bigint[],
                                 $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                 $10::bool[], $11::int[], $12::text[], $13::bigint[],
                                 $14::smallint[], $15::bigint[])
              AS r(delivery_id, lease_token, status, next_attempt_at, attempt_id, app_id,
                   msg_id, endpoint_id, url, success, code, response, duration, trigger_type,
                   created_at)
         ), applied AS (
            UPDATE deliveries d SET status = r.status, attempts = d.attempts + 1,
                   next_attempt_at = r.next_attempt_at, lease_owner = NULL, lease_token = NULL,
                   updated_at = $16
            FROM results r
            WHERE d.id = r.delivery_id AND d.lease_token = r.lease_token
              AND d.status = {SENDING}
            RETURNING d.id
         )
         INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
                               response_status_code, response, response_duration_ms,
                               trigger_type, created_at)
         SELECT r.attempt_id, r.delivery_id, r.app_id, r.msg_id, r.endpoint_id, r.url,
                r.success, r.code, r.response, r.duration, r.trigger_type, r.created_at
         FROM results r JOIN applied a ON a.id = r.delivery_id
         RETURNING delivery_id"
    ))
    .bind(&ids)
    .bind(&tokens)
    .bind(&statuses)
    .bind(&next_at)
    .bind(&attempt_ids)
    .bind(&app_ids)
    .bind(&msg_ids)
    .bind(&endpoint_ids)
    .bind(&urls)
    .bind(&successes)
    .bind(&codes)
    .bind(&responses)
    .bind(&durations)
    .bind(&triggers)
    .bind(&created)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let applied: HashSet<String> = applied.into_iter().collect();
    let applied: Vec<bool> = results
        .iter()
        .map(|r| applied.contains(&r.delivery_id))
        .collect();
    let applied_results = results
        .iter()
        .zip(&applied)
        .filter_map(|(result, applied)| applied.then_some(result));
    let disabled = judge_endpoints(&mut tx, applied_results, now, policy).await?;
    // A finished delivery (delivered, exhausted or gone) lets the next one of its key go, in
    // this transaction: a crash after the commit must not leave the key held for ever.
    let finished: Vec<&str> = results
        .iter()
        .zip(&applied)
        .filter(|(r, applied)| **applied && outcome::finishes(r.next))
        .map(|(r, _)| r.delivery_id.as_str())
        .collect();
    let released = if finished.is_empty() {
        0
    } else {
        release_held(&mut tx, &finished, now).await?
    };
    tx.commit().await.map_err(db_error)?;
    Ok(Recorded {
        applied,
        disabled,
        released,
    })
}

/// Moves the failure clock of each endpoint with results in the batch; disables (and cancels
/// the pending deliveries of) those the rules say to. Only endpoints whose clock may change are
/// locked (in id order) and written, so a batch of successes to healthy endpoints writes none.
async fn judge_endpoints<'a>(
    tx: &mut sqlx::PgConnection,
    applied: impl Iterator<Item = &'a AttemptResult>,
    now: i64,
    policy: &HealthPolicy,
) -> StoreResult<Vec<DisabledEndpoint>> {
    let verdicts = health::verdicts(applied);
    if verdicts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = verdicts.iter().map(|v| v.endpoint_id).collect();
    let failing: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.verdict != health::Verdict::Succeeded)
        .map(|v| v.endpoint_id)
        .collect();
    let clocks: HashMap<String, Option<i64>> = sqlx::query_as(
        "SELECT id, first_failure_at FROM endpoints
         WHERE id = ANY($1) AND NOT disabled AND (first_failure_at IS NOT NULL OR id = ANY($2))
         ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .bind(&failing)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?
    .into_iter()
    .collect();
    let judged = health::judge_batch(&verdicts, &clocks, now, policy);
    if judged.changes.is_empty() {
        return Ok(judged.disabled);
    }
    let changed_ids: Vec<&str> = judged.changes.iter().map(|c| c.endpoint_id).collect();
    let changed_since: Vec<Option<i64>> = judged.changes.iter().map(|c| c.failing_since).collect();
    let changed_disable: Vec<bool> = judged.changes.iter().map(|c| c.disable).collect();
    sqlx::query(
        "UPDATE endpoints e SET first_failure_at = c.since, disabled = c.disable,
                updated_at = CASE WHEN c.disable THEN $4 ELSE e.updated_at END
         FROM UNNEST($1::text[], $2::bigint[], $3::bool[]) AS c(id, since, disable)
         WHERE e.id = c.id",
    )
    .bind(&changed_ids)
    .bind(&changed_since)
    .bind(&changed_disable)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    if !judged.disabled.is_empty() {
        let gone: Vec<&str> = judged
            .disabled
            .iter()
            .map(|d| d.endpoint_id.as_str())
            .collect();
        cancel_pending(&mut *tx, &gone, now).await?;
    }
    Ok(judged.disabled)
}

/// Cancels the waiting deliveries of disabled endpoints. Rows another transaction holds at
/// this moment (a claim, or another node recording a result) are skipped rather than waited
/// for, which could deadlock with that transaction's endpoint lock; the claim query cancels
/// them when they next come due.
pub async fn cancel_pending(
    conn: &mut sqlx::PgConnection,
    endpoint_ids: &[&str],
    now: i64,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE deliveries d SET status = $2, next_attempt_at = NULL, lease_owner = NULL,
                lease_token = NULL, updated_at = $3
         FROM (SELECT id FROM deliveries
               WHERE endpoint_id = ANY($1) AND (next_attempt_at IS NOT NULL OR status = {HELD})
               FOR UPDATE SKIP LOCKED) waiting
         WHERE d.id = waiting.id"
    ))
    .bind(endpoint_ids)
    .bind(DeliveryStatus::Canceled as i16)
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
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

/// Makes a message due again for an endpoint; false when either is not in the application.
pub async fn resend(
    pool: &PgPool,
    app_id: &str,
    msg_id: &str,
    endpoint_id: &str,
) -> StoreResult<bool> {
    // A delivery already in flight is left alone: it is being attempted right now.
    let found: bool = sqlx::query_scalar(&format!(
        "WITH target AS (
            SELECT m.id AS msg_id, e.id AS endpoint_id FROM messages m, endpoints e
            WHERE m.id = $1 AND m.app_id = $3 AND e.id = $2 AND e.app_id = $3
         ), upsert AS (
            INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
                                    trigger_type, updated_at)
            SELECT $4, t.msg_id, t.endpoint_id, $3, {PENDING}, $5, {MANUAL}, $5 FROM target t
            ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = {PENDING}, attempts = 0,
               next_attempt_at = excluded.next_attempt_at, trigger_type = {MANUAL},
               updated_at = excluded.updated_at
            WHERE deliveries.status <> {SENDING}
         )
         SELECT EXISTS (SELECT 1 FROM target)"
    ))
    .bind(msg_id)
    .bind(endpoint_id)
    .bind(app_id)
    .bind(new_id(IdPrefix::Delivery))
    .bind(now_millis())
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(found)
}

pub async fn list_attempts(
    pool: &PgPool,
    app_id: &str,
    filter: &AttemptFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Attempt>> {
    let mut query = ListQuery::new(&format!("SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE"));
    query.bind(" a.app_id = ", app_id.to_string());
    if let Some(msg_id) = &filter.msg_id {
        query.bind(" AND a.msg_id = ", msg_id.clone());
    }
    if let Some(endpoint_id) = &filter.endpoint_id {
        query.bind(" AND a.endpoint_id = ", endpoint_id.clone());
    }
    if let Some(success) = filter.success {
        query.bind(" AND a.success = ", success);
    }
    query.fetch(pool, page, "a.id", rows::attempt).await
}

pub async fn get_attempt(
    pool: &PgPool,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> StoreResult<Option<Attempt>> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a
         WHERE a.id = $1 AND a.app_id = $2 AND a.msg_id = $3"
    ))
    .bind(attempt_id)
    .bind(app_id)
    .bind(msg_id)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::attempt)
        .transpose()
        .map_err(db_error)
}

pub async fn list_message_deliveries(
    pool: &PgPool,
    cipher: &SecretCipher,
    app_id: &str,
    msg_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<(Endpoint, DeliveryState)>> {
    let mut query = ListQuery::new(&format!(
        "SELECT {ENDPOINT_COLUMNS}, d.status AS d_status, d.next_attempt_at AS d_next_attempt_at
         FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id WHERE"
    ));
    query
        .bind(" d.app_id = ", app_id.to_string())
        .bind(" AND d.msg_id = ", msg_id.to_string());
    query
        .fetch(pool, page, "e.id", |row| {
            Ok((rows::endpoint(row, cipher)?, rows::delivery_state(row)?))
        })
        .await
}

pub async fn list_endpoint_deliveries(
    pool: &PgPool,
    app_id: &str,
    endpoint_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<(Message, DeliveryState)>> {
    let mut query = ListQuery::new(&format!(
        "SELECT {MESSAGE_COLUMNS}, d.status AS d_status, d.next_attempt_at AS d_next_attempt_at
         FROM deliveries d JOIN messages m ON m.id = d.msg_id
         JOIN message_payloads p ON p.msg_id = m.id WHERE"
    ));
    query
        .bind(" d.app_id = ", app_id.to_string())
        .bind(" AND d.endpoint_id = ", endpoint_id.to_string());
    query
        .fetch(pool, page, "m.id", |row| {
            Ok((rows::message(row)?, rows::delivery_state(row)?))
        })
        .await
}

/// Inserts a message and one delivery of it, due now, to one endpoint of its application, in
/// one statement.
pub async fn insert_message_to(
    pool: &PgPool,
    message: &Message,
    endpoint_id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "WITH message AS (
            INSERT INTO messages (id, app_id, event_type, event_id, channels, created_at,
                                  payload_expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
         ), payload AS (
            INSERT INTO message_payloads (msg_id, payload) VALUES ($1, $8)
         )
         INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
                                 updated_at)
         SELECT $9, $1, e.id, e.app_id, $10, $6, $6 FROM endpoints e
         WHERE e.id = $11 AND e.app_id = $2",
    )
    .bind(&message.id)
    .bind(&message.app_id)
    .bind(&message.event_type)
    .bind(&message.event_id)
    .bind(&message.channels)
    .bind(message.created_at)
    .bind(message.payload_expires_at)
    .bind(&*message.payload)
    .bind(new_id(IdPrefix::Delivery))
    .bind(DeliveryStatus::Pending as i16)
    .bind(endpoint_id)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Removes a message's payload now (it reads as `{}` from then on) and cancels its deliveries
/// that still had work, in one statement. False when the application has no such message.
pub async fn expunge_payload(pool: &PgPool, app_id: &str, msg_id: &str) -> StoreResult<bool> {
    let found: i64 = sqlx::query_scalar(&format!(
        "WITH target AS (
            SELECT id FROM messages WHERE id = $1 AND app_id = $2 FOR UPDATE
         ), {EXPUNGE}"
    ))
    .bind(msg_id)
    .bind(app_id)
    .bind(DeliveryStatus::Canceled as i16)
    .bind(now_millis())
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(found > 0)
}

/// Expunges up to `limit` payloads whose retention ended by `now`; messages another node is
/// expunging are skipped. Answers how many.
pub async fn expire_payloads(pool: &PgPool, now: i64, limit: i64) -> StoreResult<u64> {
    let expired: i64 = sqlx::query_scalar(&format!(
        "WITH target AS (
            SELECT id FROM messages WHERE NOT payload_expired AND payload_expires_at <= $1
            ORDER BY payload_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), {EXPUNGE}"
    ))
    .bind(now)
    .bind(limit)
    .bind(DeliveryStatus::Canceled as i16)
    .bind(now_millis())
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

/// The rest of an expunge statement after a `target` CTE of message ids: flag the messages,
/// blank their payloads, cancel their deliveries that still had work (`$3` the cancelled
/// status, `$4` now), and count the messages.
const EXPUNGE: &str = "flagged AS (
        UPDATE messages m SET payload_expired = TRUE FROM target WHERE m.id = target.id
        RETURNING m.id
     ), blanked AS (
        UPDATE message_payloads p SET payload = '{}' FROM flagged WHERE p.msg_id = flagged.id
     ), cancelled AS (
        UPDATE deliveries d SET status = $3, next_attempt_at = NULL, lease_owner = NULL,
               lease_token = NULL, updated_at = $4
        FROM flagged WHERE d.msg_id = flagged.id AND d.next_attempt_at IS NOT NULL
     )
     SELECT COUNT(*) FROM flagged";

/// Deletes up to `limit` attempts made before `before`, then up to `limit` messages created
/// before it whose deliveries have no work left, with their payloads, deliveries and attempts.
/// Ids sort by creation time, so "before" is a range of the primary keys. Rows another node is
/// deleting at the same moment are skipped, not waited for. Answers how many rows went.
pub async fn prune(pool: &PgPool, before: i64, limit: usize) -> StoreResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let attempts = sqlx::query(
        "WITH old AS (
            SELECT id FROM attempts WHERE id < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
         )
         DELETE FROM attempts a USING old WHERE a.id = old.id",
    )
    .bind(lower_bound_at(IdPrefix::Attempt, before))
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db_error)?
    .rows_affected();
    let messages: i64 = sqlx::query_scalar(
        "WITH old AS (
            SELECT m.id FROM messages m
            WHERE m.id < $1 AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.next_attempt_at IS NOT NULL)
            ORDER BY m.id LIMIT $2 FOR UPDATE SKIP LOCKED
         ), attempts_gone AS (
            DELETE FROM attempts WHERE msg_id IN (SELECT id FROM old)
         ), deliveries_gone AS (
            DELETE FROM deliveries WHERE msg_id IN (SELECT id FROM old)
         ), payloads_gone AS (
            DELETE FROM message_payloads WHERE msg_id IN (SELECT id FROM old)
         ), messages_gone AS (
            DELETE FROM messages WHERE id IN (SELECT id FROM old) RETURNING id
         )
         SELECT COUNT(*) FROM messages_gone",
    )
    .bind(lower_bound_at(IdPrefix::Message, before))
    .bind(limit)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(attempts + u64::try_from(messages).unwrap_or(0))
}
