//! Queries for messages, their fan-out into deliveries, claiming, results and attempts.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::catalog;
use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, to_json, ENDPOINT_COLUMNS, MESSAGE_COLUMNS};
use crate::domain::ids::{lower_bound_at, new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::cipher::SecretCipher;
use crate::store::claim::{self, LeasedRow};
use crate::store::health;
use crate::store::outcome::{self, KeyOf};
use crate::store::status::{HELD, PENDING, SENDING};
use crate::store::throttle;
use crate::store::trigger::MANUAL;
use crate::store::{
    Attempt, AttemptFilter, AttemptResult, Backlog, ClaimedDelivery, DeliveryState, DeliveryStatus,
    DisabledEndpoint, Endpoint, FeedPosition, HealthPolicy, Ingested, Lease, Message,
    MessageFilter, PageRequest, Recorded, StoreResult, TriggerType,
};

/// Inserts a message and one delivery per endpoint that wants it.
pub fn insert_message(
    conn: &Connection,
    cipher: &SecretCipher,
    message: &Message,
    lease: Option<&Lease>,
) -> StoreResult<Ingested> {
    insert_message_row(conn, message)?;

    let mut ingested = Ingested::default();
    for endpoint in catalog::app_endpoints(conn, cipher, &message.app_id)? {
        if !endpoint.wants(&message.event_type, message.channels.as_deref()) {
            continue;
        }
        let delivery_id = new_id(IdPrefix::Delivery);
        let start = if held_back(conn, &endpoint.id, message.ordering_key.as_deref())? {
            Start::Held
        } else {
            match lease {
                Some(lease) if may_lease_at_ingest(&endpoint, lease) => Start::Leased(lease),
                _ => Start::Due,
            }
        };
        insert_delivery(conn, &delivery_id, message, &endpoint.id, &start)?;
        match start {
            Start::Leased(lease) => ingested.claimed.push(ClaimedDelivery::new(
                delivery_id,
                lease,
                message,
                &endpoint,
                0,
            )),
            Start::Due | Start::Held => ingested.unleased += 1,
        }
    }
    Ok(ingested)
}

/// How a new delivery begins.
enum Start<'a> {
    /// Leased to the ingesting node's worker, which attempts it at once.
    Leased(&'a Lease),
    /// Due now, for whichever worker claims it.
    Due,
    /// Waiting for an earlier delivery of the same ordering key.
    Held,
}

/// A throttled endpoint's deliveries go through claiming, where the rate is enforced; an
/// endpoint the worker has no room for is left to claiming too.
fn may_lease_at_ingest(endpoint: &Endpoint, lease: &Lease) -> bool {
    endpoint.throttle_rate.is_none() && !lease.skip_endpoints.contains(&endpoint.id)
}

/// Whether an earlier delivery of this key to this endpoint is unfinished.
fn held_back(conn: &Connection, endpoint_id: &str, key: Option<&str>) -> StoreResult<bool> {
    let Some(key) = key else {
        return Ok(false);
    };
    conn.prepare_cached(&format!(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = ?1 AND ordering_key = ?2
                        AND status IN ({PENDING}, {SENDING}, {HELD}))"
    ))
    .and_then(|mut s| s.query_row(params![endpoint_id, key], |row| row.get(0)))
    .map_err(db_error)
}

/// Makes the earliest held delivery of a key due, once the one before it has finished.
fn release_next(conn: &Connection, endpoint_id: &str, key: &str, now: i64) -> StoreResult<usize> {
    conn.prepare_cached(&format!(
        "UPDATE deliveries SET status = {PENDING}, next_attempt_at = ?3, updated_at = ?3
         WHERE rowid = (SELECT rowid FROM deliveries
                        WHERE endpoint_id = ?1 AND ordering_key = ?2 AND status = {HELD}
                        ORDER BY rowid LIMIT 1)
           AND NOT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = ?1
                           AND ordering_key = ?2 AND status IN ({PENDING}, {SENDING}))"
    ))
    .and_then(|mut s| s.execute(params![endpoint_id, key, now]))
    .map_err(db_error)
}

/// Inserts the message row. Its feed position is taken inside this job's savepoint: the
/// writer commits jobs one after another, so feed positions follow commit order, and a job
/// rolled back gives its position back.
fn insert_message_row(conn: &Connection, message: &Message) -> StoreResult<()> {
    let feed_seq: i64 = conn
        .prepare_cached("UPDATE feed_counter SET last = last + 1 WHERE id = 1 RETURNING last")
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .map_err(db_error)?;
    conn.prepare_cached(
        "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload, created_at,
         payload_expires_at, ordering_key, feed_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            message.id,
            message.app_id,
            message.event_type,
            message.event_id,
            message.channels.as_ref().map(to_json),
            &*message.payload,
            message.created_at,
            message.payload_expires_at,
            message.ordering_key,
            feed_seq
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

/// Inserts a message and one delivery of it, due now, to one endpoint of its application.
pub fn insert_message_to(
    conn: &Connection,
    message: &Message,
    endpoint_id: &str,
) -> StoreResult<()> {
    insert_message_row(conn, message)?;
    conn.prepare_cached(
        "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
         updated_at)
         SELECT ?1, ?2, e.id, e.app_id, ?3, ?4, ?4 FROM endpoints e
         WHERE e.id = ?5 AND e.app_id = ?6",
    )
    .and_then(|mut s| {
        s.execute(params![
            new_id(IdPrefix::Delivery),
            message.id,
            DeliveryStatus::Pending as i64,
            message.created_at,
            endpoint_id,
            message.app_id
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn insert_delivery(
    conn: &Connection,
    delivery_id: &str,
    message: &Message,
    endpoint_id: &str,
    start: &Start<'_>,
) -> StoreResult<()> {
    let (status, next_attempt_at, lease) = match start {
        Start::Leased(lease) => (DeliveryStatus::Sending, Some(lease.until), Some(*lease)),
        Start::Due => (DeliveryStatus::Pending, Some(message.created_at), None),
        Start::Held => (DeliveryStatus::Held, None, None),
    };
    conn.prepare_cached(
        "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
         lease_owner, lease_token, updated_at, ordering_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            delivery_id,
            message.id,
            endpoint_id,
            message.app_id,
            status as i64,
            next_attempt_at,
            lease.map(|l| &l.owner),
            lease.map(|l| &l.token),
            message.created_at,
            message.ordering_key
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn get_message(conn: &Connection, app_id: &str, msg_id: &str) -> StoreResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.app_id = ?1 AND (m.id = ?2 OR m.event_id = ?2) LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([app_id, msg_id], rows::message).optional())
    .map_err(db_error)
}

pub fn list_messages(
    conn: &Connection,
    app_id: &str,
    filter: &MessageFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Message>> {
    let mut query = ListQuery::new(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.app_id = ?"),
        vec![Value::Text(app_id.into())],
    );
    if let Some(types) = &filter.event_types {
        query.and_in("m.event_type", types);
    }
    if let Some(channel) = &filter.channel {
        query.and(
            "EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)",
            channel.clone(),
        );
    }
    if let Some(before) = filter.before {
        query.and("m.created_at < ?", before);
    }
    if let Some(after) = filter.after {
        query.and("m.created_at > ?", after);
    }
    query.fetch(conn, page, "m.id", rows::message)
}

/// The feed of an application after `after`. Readers see whole commits of the single writer,
/// which numbers messages in commit order, so every position answered is final.
pub fn read_feed(
    conn: &Connection,
    app_id: &str,
    after: FeedPosition,
    limit: usize,
) -> StoreResult<Vec<(FeedPosition, Message)>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT m.feed_seq, {MESSAGE_COLUMNS} FROM messages m
             WHERE m.app_id = ?1 AND m.feed_seq > ?2 ORDER BY m.feed_seq LIMIT ?3"
        ))
        .map_err(db_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(params![app_id, after.seq, limit], |row| {
            let position = FeedPosition {
                group: 0,
                seq: row.get("feed_seq")?,
            };
            Ok((position, rows::message(row)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(rows)
}

/// Claims the oldest due deliveries, in one walk of the due index.
fn claim_oldest_due() -> String {
    format!(
        "UPDATE deliveries SET status = {SENDING}, lease_owner = ?1,
         lease_token = ?2, next_attempt_at = ?3, updated_at = ?4
         WHERE rowid IN (SELECT rowid FROM deliveries WHERE next_attempt_at <= ?4
                         ORDER BY next_attempt_at LIMIT ?5)
         RETURNING id, msg_id, endpoint_id, attempts, trigger_type, rowid"
    )
}

/// Claims the oldest due deliveries of the endpoints not passed over (`?6`): up to the limit
/// from each endpoint's own due order, then the oldest of those. Walking the global due order
/// instead would read every due row of a passed-over endpoint first; a dead endpoint's backlog
/// of a million would make every claim read a million rows.
fn claim_oldest_due_of_others() -> String {
    format!(
        "UPDATE deliveries SET status = {SENDING}, lease_owner = ?1,
         lease_token = ?2, next_attempt_at = ?3, updated_at = ?4
         WHERE rowid IN (
            SELECT d.rowid FROM endpoints e
            JOIN deliveries d ON d.rowid IN (
                SELECT rowid FROM deliveries WHERE endpoint_id = e.id AND next_attempt_at <= ?4
                ORDER BY next_attempt_at LIMIT ?5)
            WHERE e.id NOT IN (SELECT value FROM json_each(?6))
            ORDER BY d.next_attempt_at LIMIT ?5)
         RETURNING id, msg_id, endpoint_id, attempts, trigger_type, rowid"
    )
}

/// The endpoints to pass over, as one JSON array parameter: a single cached statement serves
/// any number of them.
fn skip_json(endpoints: &[String]) -> String {
    serde_json::json!(endpoints).to_string()
}

/// Leases due deliveries: pending ones whose time has come and sending ones whose lease expired.
pub fn claim_due(
    conn: &Connection,
    cipher: &SecretCipher,
    lease: &Lease,
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut statement = conn
        .prepare_cached(&if lease.skip_endpoints.is_empty() {
            claim_oldest_due()
        } else {
            claim_oldest_due_of_others()
        })
        .map_err(db_error)?;
    let params: [rusqlite::types::Value; 6] = [
        lease.owner.clone().into(),
        lease.token.clone().into(),
        lease.until.into(),
        lease.now.into(),
        (limit as i64).into(),
        skip_json(&lease.skip_endpoints).into(),
    ];
    // Claiming with no endpoint to pass over takes no list (`?6`).
    let used = statement.parameter_count();
    let mut due = statement
        .query_map(
            rusqlite::params_from_iter(params.into_iter().take(used)),
            |row| {
                let leased = LeasedRow {
                    delivery_id: row.get(0)?,
                    msg_id: row.get(1)?,
                    endpoint_id: row.get(2)?,
                    attempts: row.get(3)?,
                    trigger: TriggerType::from_code(row.get(4)?),
                };
                Ok((leased, row.get::<_, i64>(5)?))
            },
        )
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    // Oldest first, so a throttled endpoint sends its deliveries in ingest order.
    due.sort_by_key(|(_, rowid)| *rowid);
    let due: Vec<LeasedRow> = due.into_iter().map(|(leased, _)| leased).collect();

    // Deliveries of one batch often share endpoints and messages; load each once.
    let mut endpoints = HashMap::new();
    for id in claim::distinct(due.iter().map(|d| d.endpoint_id.as_str())) {
        if let Some(endpoint) = endpoint_by_id(conn, cipher, id)? {
            endpoints.insert(endpoint.id.clone(), endpoint);
        }
    }
    let mut messages = HashMap::new();
    for id in claim::distinct(due.iter().map(|d| d.msg_id.as_str())) {
        if let Some(message) = message_by_id(conn, id)? {
            messages.insert(message.id.clone(), message);
        }
    }
    let sorted = claim::sort(due, lease, &endpoints, &messages);
    for delivery_id in &sorted.cancel {
        cancel_claimed(conn, delivery_id, lease)?;
    }
    apply_throttles(conn, sorted.kept, &sorted.rates, lease.now)
}

/// Keeps, of each throttled endpoint's claimed deliveries, those its schedule allows now, and
/// gives the others back, due at their planned times.
fn apply_throttles(
    conn: &Connection,
    claimed: Vec<ClaimedDelivery>,
    rates: &HashMap<String, u32>,
    now: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut deferred = Vec::new();
    for group in throttle::throttled_groups(&claimed, rates) {
        let tat: i64 = conn
            .prepare_cached("SELECT throttle_tat FROM endpoints WHERE id = ?1")
            .and_then(|mut s| s.query_row([group.endpoint_id], |row| row.get(0)))
            .map_err(db_error)?;
        let (tat, later) = group.schedule(tat, now);
        conn.prepare_cached("UPDATE endpoints SET throttle_tat = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![group.endpoint_id, tat]))
            .map_err(db_error)?;
        for (i, at) in later {
            give_back(conn, &claimed[i], at)?;
            deferred.push(i);
        }
    }
    Ok(throttle::without_deferred(claimed, &deferred))
}

/// Returns claimed deliveries unattempted, due again at `at`.
pub fn give_back_all(
    conn: &Connection,
    deliveries: &[ClaimedDelivery],
    at: i64,
) -> StoreResult<()> {
    deliveries.iter().try_for_each(|d| give_back(conn, d, at))
}

/// Returns a claimed delivery unattempted, due again at `at`.
fn give_back(conn: &Connection, delivery: &ClaimedDelivery, at: i64) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "UPDATE deliveries SET status = {PENDING}, next_attempt_at = ?3, lease_owner = NULL,
         lease_token = NULL WHERE id = ?1 AND lease_token = ?2"
    ))
    .and_then(|mut s| s.execute(params![delivery.delivery_id, delivery.lease_token, at]))
    .map_err(db_error)?;
    Ok(())
}

/// Cancels a delivery just claimed under `lease`, because its endpoint is disabled.
fn cancel_claimed(conn: &Connection, delivery_id: &str, lease: &Lease) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?3, next_attempt_at = NULL, lease_owner = NULL,
         lease_token = NULL, updated_at = ?4 WHERE id = ?1 AND lease_token = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            delivery_id,
            lease.token,
            DeliveryStatus::Canceled as i64,
            lease.now
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn endpoint_by_id(
    conn: &Connection,
    cipher: &SecretCipher,
    endpoint_id: &str,
) -> StoreResult<Option<Endpoint>> {
    conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.id = ?1"
    ))
    .and_then(|mut s| {
        s.query_row([endpoint_id], |row| rows::endpoint(row, cipher))
            .optional()
    })
    .map_err(db_error)
}

fn message_by_id(conn: &Connection, msg_id: &str) -> StoreResult<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"
    ))
    .and_then(|mut s| s.query_row([msg_id], rows::message).optional())
    .map_err(db_error)
}

pub fn backlog(conn: &Connection) -> StoreResult<Backlog> {
    let (pending, oldest_created_at): (u64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(m.created_at) FROM deliveries d JOIN messages m ON m.id = d.msg_id
             WHERE d.next_attempt_at IS NOT NULL",
        )
        .and_then(|mut s| s.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
        .map_err(db_error)?;
    let endpoints_disabled: u64 = conn
        .prepare_cached("SELECT COUNT(*) FROM endpoints WHERE disabled = 1")
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .map_err(db_error)?;
    Ok(Backlog {
        pending,
        oldest_created_at,
        endpoints_disabled,
    })
}

pub fn next_due(conn: &Connection, skip_endpoints: &[String]) -> StoreResult<Option<i64>> {
    if skip_endpoints.is_empty() {
        return conn
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL",
            )
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(db_error);
    }
    // As in claiming, endpoints passed over are left out by asking each other endpoint.
    conn.prepare_cached(
        "SELECT MIN((SELECT MIN(next_attempt_at) FROM deliveries
                     WHERE endpoint_id = e.id AND next_attempt_at IS NOT NULL))
         FROM endpoints e WHERE e.id NOT IN (SELECT value FROM json_each(?1))",
    )
    .and_then(|mut s| s.query_row([skip_json(skip_endpoints)], |row| row.get(0)))
    .map_err(db_error)
}

/// Applies results whose lease still holds, then moves the failure clocks of their endpoints
/// (see [`health`]), all in the caller's transaction.
pub fn record_attempts(
    conn: &Connection,
    results: &[AttemptResult],
    policy: &HealthPolicy,
) -> StoreResult<Recorded> {
    let mut update = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4,
             lease_owner = NULL, lease_token = NULL, updated_at = ?5
             WHERE id = ?1 AND lease_token = ?2 AND status = {SENDING}
             RETURNING endpoint_id, ordering_key"
        ))
        .map_err(db_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
             response_status_code, response, response_duration_ms, trigger_type, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db_error)?;
    let now = now_millis();
    let mut applied = Vec::with_capacity(results.len());
    let mut finished_keys: Vec<(&str, String, String)> = Vec::new();
    for result in results {
        let (status, next_attempt_at) = outcome::after_attempt(result.next);
        let updated: Option<(String, Option<String>)> = update
            .query_row(
                params![
                    result.delivery_id,
                    result.lease_token,
                    status.code(),
                    next_attempt_at,
                    now
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(db_error)?;
        applied.push(updated.is_some());
        let Some((endpoint_id, ordering_key)) = updated else {
            continue; // The lease was lost: another claim owns this delivery now.
        };
        if let Some(key) = ordering_key.filter(|_| outcome::finishes(result.next)) {
            finished_keys.push((&result.app_id, key, endpoint_id));
        }
        let a = &result.attempt;
        insert
            .execute(params![
                a.id,
                result.delivery_id,
                result.app_id,
                a.msg_id,
                a.endpoint_id,
                a.url,
                a.success,
                a.response_status_code,
                a.response,
                a.response_duration_ms,
                a.trigger_type as i64,
                a.created_at
            ])
            .map_err(db_error)?;
    }
    // The next message of each finished key may go.
    let mut released = 0;
    let keys =
        outcome::keys_to_release(
            finished_keys
                .iter()
                .map(|(app_id, key, endpoint_id)| KeyOf {
                    app_id,
                    ordering_key: key,
                    endpoint_id,
                }),
        );
    for key in keys {
        released += release_next(conn, key.endpoint_id, key.ordering_key, now)?;
    }
    let applied_results = results
        .iter()
        .zip(&applied)
        .filter_map(|(result, applied)| applied.then_some(result));
    let disabled = judge_endpoints(conn, applied_results, now, policy)?;
    Ok(Recorded {
        applied,
        disabled,
        released,
    })
}

/// Moves the failure clock of each endpoint with results in the batch; disables (and cancels
/// the pending deliveries of) those the rules say to. Endpoint rows are written only when
/// their clock or state changes, so a batch of successes to healthy endpoints writes none.
fn judge_endpoints<'a>(
    conn: &Connection,
    applied: impl Iterator<Item = &'a AttemptResult>,
    now: i64,
    policy: &HealthPolicy,
) -> StoreResult<Vec<DisabledEndpoint>> {
    let mut read = conn
        .prepare_cached("SELECT first_failure_at FROM endpoints WHERE id = ?1 AND disabled = 0")
        .map_err(db_error)?;
    let mut write = conn
        .prepare_cached(
            "UPDATE endpoints SET first_failure_at = ?2, disabled = ?3,
             updated_at = CASE WHEN ?3 THEN ?4 ELSE updated_at END WHERE id = ?1",
        )
        .map_err(db_error)?;
    let verdicts = health::verdicts(applied);
    // An endpoint deleted or disabled meanwhile has no clock to read.
    let mut clocks = HashMap::new();
    for verdict in &verdicts {
        let clock = read
            .query_row([verdict.endpoint_id], |row| row.get::<_, Option<i64>>(0))
            .optional()
            .map_err(db_error)?;
        if let Some(since) = clock {
            clocks.insert(verdict.endpoint_id.to_string(), since);
        }
    }
    let judged = health::judge_batch(&verdicts, &clocks, now, policy);
    for change in &judged.changes {
        write
            .execute(params![
                change.endpoint_id,
                change.failing_since,
                change.disable,
                now
            ])
            .map_err(db_error)?;
        if change.disable {
            catalog::cancel_pending(conn, change.endpoint_id)?;
        }
    }
    Ok(judged.disabled)
}

/// Makes the deliveries leased by `owner` (or by anyone, with `None`) due again now.
pub fn release_leases(conn: &Connection, owner: Option<&str>) -> StoreResult<()> {
    conn.execute(
        &format!(
            "UPDATE deliveries SET status = {PENDING}, next_attempt_at = ?1, lease_owner = NULL,
             lease_token = NULL WHERE status = {SENDING} AND (?2 IS NULL OR lease_owner = ?2)"
        ),
        params![now_millis(), owner],
    )
    .map_err(db_error)?;
    Ok(())
}

pub fn resend(
    conn: &Connection,
    app_id: &str,
    msg_id: &str,
    endpoint_id: &str,
) -> StoreResult<bool> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND app_id = ?3)
                AND EXISTS (SELECT 1 FROM endpoints WHERE id = ?2 AND app_id = ?3)",
            [msg_id, endpoint_id, app_id],
            |row| row.get(0),
        )
        .map_err(db_error)?;
    if !exists {
        return Ok(false);
    }
    // A delivery already in flight is left alone: it is being attempted right now.
    conn.execute(
        &format!(
            "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
             trigger_type, updated_at) VALUES (?1, ?2, ?3, ?4, {PENDING}, ?5, {MANUAL}, ?5)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = {PENDING}, attempts = 0,
               next_attempt_at = excluded.next_attempt_at, trigger_type = {MANUAL},
               updated_at = excluded.updated_at
             WHERE deliveries.status != {SENDING}"
        ),
        params![
            new_id(IdPrefix::Delivery),
            msg_id,
            endpoint_id,
            app_id,
            now_millis()
        ],
    )
    .map_err(db_error)?;
    Ok(true)
}

pub fn list_attempts(
    conn: &Connection,
    app_id: &str,
    filter: &AttemptFilter,
    page: &PageRequest,
) -> StoreResult<Vec<Attempt>> {
    let mut query = ListQuery::new(
        "SELECT * FROM attempts WHERE app_id = ?",
        vec![Value::Text(app_id.into())],
    );
    if let Some(msg_id) = &filter.msg_id {
        query.and("msg_id = ?", msg_id.clone());
    }
    if let Some(endpoint_id) = &filter.endpoint_id {
        query.and("endpoint_id = ?", endpoint_id.clone());
    }
    if let Some(success) = filter.success {
        query.and("success = ?", success);
    }
    query.fetch(conn, page, "id", rows::attempt)
}

pub fn get_attempt(
    conn: &Connection,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> StoreResult<Option<Attempt>> {
    conn.prepare_cached("SELECT * FROM attempts WHERE id = ?1 AND app_id = ?2 AND msg_id = ?3")
        .and_then(|mut s| {
            s.query_row([attempt_id, app_id, msg_id], rows::attempt)
                .optional()
        })
        .map_err(db_error)
}

pub fn list_message_deliveries(
    conn: &Connection,
    cipher: &SecretCipher,
    app_id: &str,
    msg_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<(Endpoint, DeliveryState)>> {
    ListQuery::new(
        &format!(
            "SELECT {ENDPOINT_COLUMNS}, d.status AS d_status, d.next_attempt_at AS d_next_attempt_at
             FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
             WHERE d.app_id = ? AND d.msg_id = ?"
        ),
        vec![Value::Text(app_id.into()), Value::Text(msg_id.into())],
    )
    .fetch(conn, page, "e.id", |row| {
        Ok((rows::endpoint(row, cipher)?, rows::delivery_state(row)?))
    })
}

pub fn list_endpoint_deliveries(
    conn: &Connection,
    app_id: &str,
    endpoint_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<(Message, DeliveryState)>> {
    ListQuery::new(
        &format!(
            "SELECT {MESSAGE_COLUMNS}, d.status AS d_status, d.next_attempt_at AS d_next_attempt_at
             FROM deliveries d JOIN messages m ON m.id = d.msg_id
             WHERE d.app_id = ? AND d.endpoint_id = ?"
        ),
        vec![Value::Text(app_id.into()), Value::Text(endpoint_id.into())],
    )
    .fetch(conn, page, "m.id", |row| {
        Ok((rows::message(row)?, rows::delivery_state(row)?))
    })
}

/// Removes a message's payload now (it reads as `{}` from then on) and cancels its deliveries
/// that still had work: there is nothing left to send. False when the application has no such
/// message.
pub fn expunge_payload(conn: &Connection, app_id: &str, msg_id: &str) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET payload = '{}', payload_expired = 1 WHERE id = ?1 AND app_id = ?2",
        )
        .and_then(|mut s| s.execute([msg_id, app_id]))
        .map_err(db_error)?;
    if changed == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?2, next_attempt_at = NULL, lease_owner = NULL,
         lease_token = NULL, updated_at = ?3 WHERE msg_id = ?1 AND next_attempt_at IS NOT NULL",
    )
    .and_then(|mut s| {
        s.execute(params![
            msg_id,
            DeliveryStatus::Canceled as i64,
            now_millis()
        ])
    })
    .map_err(db_error)?;
    Ok(true)
}

/// Expunges up to `limit` payloads whose retention ended by `now`; answers how many.
pub fn expire_payloads(conn: &Connection, now: i64, limit: i64) -> StoreResult<usize> {
    let mut statement = conn
        .prepare_cached(
            "SELECT id, app_id FROM messages WHERE payload_expired = 0 AND payload_expires_at <= ?1
             ORDER BY payload_expires_at LIMIT ?2",
        )
        .map_err(db_error)?;
    let due = statement
        .query_map(params![now, limit], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    for (msg_id, app_id) in &due {
        expunge_payload(conn, app_id, msg_id)?;
    }
    Ok(due.len())
}

/// Deletes up to `limit` attempts made before `before`, then up to `limit` messages created
/// before it whose deliveries have no work left (their deliveries and attempts follow by
/// cascade). Ids sort by creation time, so "before" is a range of the primary keys.
pub fn prune(conn: &Connection, before: i64, limit: usize) -> StoreResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let attempts = conn
        .prepare_cached(
            "DELETE FROM attempts WHERE id IN
             (SELECT id FROM attempts WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![lower_bound_at(IdPrefix::Attempt, before), limit]))
        .map_err(db_error)?;
    let messages = conn
        .prepare_cached(
            "DELETE FROM messages WHERE id IN
             (SELECT m.id FROM messages m WHERE m.id < ?1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.next_attempt_at IS NOT NULL)
              ORDER BY m.id LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![lower_bound_at(IdPrefix::Message, before), limit]))
        .map_err(db_error)?;
    Ok(u64::try_from(attempts + messages).unwrap_or(0))
}
