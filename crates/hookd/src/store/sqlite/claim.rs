//! The delivery engine's side before an attempt: claiming due deliveries under a lease
//! (what happens to them is [`crate::store::claim`]'s and [`crate::store::throttle`]'s call),
//! giving leases back, and when work is next due.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use super::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS};
use crate::domain::time::now_millis;
use crate::domain::{AppId, EndpointId};
use crate::store::cipher::SecretCipher;
use crate::store::claim::{self, LeasedRow};
use crate::store::status::{PENDING, SENDING};
use crate::store::throttle;
use crate::store::{
    Backlog, ClaimedDelivery, DeliveryStatus, Endpoint, EndpointRoom, Lease, Message, StoreResult,
    TriggerType, LISTEN_RELEASE_LIMIT,
};

/// Claims the oldest due deliveries, in one walk of the due index, taking at most `?6` of any
/// one endpoint (see [`crate::store::EndpointRoom`]).
fn claim_oldest_due() -> String {
    format!(
        "UPDATE deliveries SET status = {SENDING}, lease_owner = ?1,
         lease_token = ?2, next_attempt_at = ?3, updated_at = ?4
         WHERE rowid IN (
            SELECT rid FROM (
                SELECT rid, ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY due) AS n
                FROM (SELECT rowid AS rid, endpoint_id, next_attempt_at AS due FROM deliveries
                      WHERE next_attempt_at <= ?4 ORDER BY next_attempt_at LIMIT ?5))
            WHERE n <= ?6)
         RETURNING id, msg_id, endpoint_id, attempts, trigger_type, rowid"
    )
}

/// Claims the oldest due deliveries of the endpoints not passed over (`?7`): up to the limit
/// from each endpoint's own due order, as many of those as the endpoint has room for (`?8`
/// names the endpoints with less room than `?6`), then the oldest of them all. Walking the
/// global due order instead would read every due row of a passed-over endpoint first; a dead
/// endpoint's backlog of a million would make every claim read a million rows.
fn claim_oldest_due_of_others() -> String {
    format!(
        "UPDATE deliveries SET status = {SENDING}, lease_owner = ?1,
         lease_token = ?2, next_attempt_at = ?3, updated_at = ?4
         WHERE rowid IN (
            SELECT rid FROM (
                SELECT d.rowid AS rid, d.endpoint_id AS endpoint_id, d.next_attempt_at AS due,
                       ROW_NUMBER() OVER (PARTITION BY d.endpoint_id
                                          ORDER BY d.next_attempt_at) AS n
                FROM endpoints e
                JOIN deliveries d ON d.rowid IN (
                    SELECT rowid FROM deliveries
                    WHERE endpoint_id = e.id AND next_attempt_at <= ?4
                    ORDER BY next_attempt_at LIMIT ?5)
                WHERE e.id NOT IN (SELECT value FROM json_each(?7)))
            WHERE n <= COALESCE((SELECT value FROM json_each(?8) WHERE key = endpoint_id), ?6)
            ORDER BY due LIMIT ?5)
         RETURNING id, msg_id, endpoint_id, attempts, trigger_type, rowid"
    )
}

/// The endpoints to pass over, as one JSON array parameter: a single cached statement serves
/// any number of them.
fn skip_json(endpoints: &[EndpointId]) -> String {
    serde_json::json!(endpoints).to_string()
}

/// The endpoints with limited room, as one JSON object of their rooms.
fn room_json(room: &EndpointRoom) -> String {
    let rooms: serde_json::Map<String, serde_json::Value> = room
        .limited
        .iter()
        .map(|(id, room)| (id.to_string(), (*room).into()))
        .collect();
    serde_json::Value::Object(rooms).to_string()
}

/// Leases due deliveries: pending ones whose time has come and sending ones whose lease expired.
pub fn claim_due(
    conn: &Connection,
    cipher: &SecretCipher,
    lease: &Lease,
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let every_endpoint = lease.skip_endpoints.is_empty() && lease.endpoint_room.limited.is_empty();
    let mut statement = conn
        .prepare_cached(&if every_endpoint {
            claim_oldest_due()
        } else {
            claim_oldest_due_of_others()
        })
        .map_err(db_error)?;
    let params: [rusqlite::types::Value; 8] = [
        lease.owner.clone().into(),
        lease.token.clone().into(),
        lease.until.into(),
        lease.now.into(),
        (limit as i64).into(),
        lease.endpoint_room.each_sql().into(),
        skip_json(&lease.skip_endpoints).into(),
        room_json(&lease.endpoint_room).into(),
    ];
    // Claiming with no endpoint to pass over or limit takes no lists (`?7`, `?8`).
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
    rates: &HashMap<EndpointId, u32>,
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

pub fn next_due(conn: &Connection, skip_endpoints: &[EndpointId]) -> StoreResult<Option<i64>> {
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

/// Pins a listen session's endpoint to `node` (see `Store::pin_listen_endpoint`). The claim
/// never reads the pin: one process holds a SQLite database, so the pin names this process or
/// one that is gone. It is written all the same, so the row says the same on both backends.
pub fn pin_listen_endpoint(
    conn: &Connection,
    app_id: &AppId,
    endpoint_id: &EndpointId,
    node: &str,
    now: i64,
) -> StoreResult<bool> {
    let pinned = conn
        .prepare_cached(
            "UPDATE endpoints SET listen_node = ?3, disabled = 0, first_failure_at = NULL,
             updated_at = ?4 WHERE app_id = ?1 AND id = ?2",
        )
        .and_then(|mut s| s.execute(params![app_id, endpoint_id, node, now]))
        .map_err(db_error)?
        > 0;
    if pinned {
        conn.prepare_cached(&format!(
            "UPDATE deliveries SET next_attempt_at = ?2 WHERE rowid IN (
                SELECT rowid FROM deliveries WHERE endpoint_id = ?1 AND status = {PENDING}
                AND next_attempt_at > ?2 ORDER BY next_attempt_at LIMIT {LISTEN_RELEASE_LIMIT})"
        ))
        .and_then(|mut s| s.execute(params![endpoint_id, now]))
        .map_err(db_error)?;
    }
    Ok(pinned)
}

pub fn backlog(conn: &Connection) -> StoreResult<Backlog> {
    let (pending, oldest_created_at): (u64, Option<i64>) = conn
        .prepare_cached(
            // The oldest pending message is the smallest pending message id (ids sort by
            // creation time): one step into `deliveries_pending_by_msg`, not a join.
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE next_attempt_at IS NOT NULL),
                    (SELECT m.created_at FROM messages m WHERE m.id =
                        (SELECT MIN(msg_id) FROM deliveries WHERE next_attempt_at IS NOT NULL))",
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
