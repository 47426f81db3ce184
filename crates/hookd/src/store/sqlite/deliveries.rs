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
use crate::store::{
    Attempt, AttemptFilter, AttemptResult, Backlog, ClaimedDelivery, DeliveryState, DeliveryStatus,
    Endpoint, Lease, Message, MessageFilter, NextStep, PageRequest, StoreResult, TriggerType,
};

/// Inserts a message and one delivery per endpoint that wants it.
pub fn insert_message(
    conn: &Connection,
    cipher: &SecretCipher,
    message: &Message,
    lease: Option<&Lease>,
) -> StoreResult<Vec<ClaimedDelivery>> {
    insert_message_row(conn, message)?;
    let mut claimed = Vec::new();
    for endpoint in catalog::app_endpoints(conn, cipher, &message.app_id)? {
        if !endpoint.wants(&message.event_type, message.channels.as_deref()) {
            continue;
        }
        let delivery_id = new_id(IdPrefix::Delivery);
        insert_delivery(conn, &delivery_id, message, &endpoint.id, lease)?;
        if let Some(lease) = lease {
            claimed.push(ClaimedDelivery::new(
                delivery_id,
                lease,
                message,
                &endpoint,
                0,
            ));
        }
    }
    Ok(claimed)
}

fn insert_message_row(conn: &Connection, message: &Message) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload, created_at,
         payload_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
            message.payload_expires_at
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
    lease: Option<&Lease>,
) -> StoreResult<()> {
    // A delivery leased at birth goes straight to the local worker; otherwise it is due now.
    let (status, next_attempt_at) = match lease {
        Some(lease) => (DeliveryStatus::Sending, lease.until),
        None => (DeliveryStatus::Pending, message.created_at),
    };
    conn.prepare_cached(
        "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
         lease_owner, lease_token, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
            message.created_at
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

/// Leases due deliveries: pending ones whose time has come and sending ones whose lease expired.
pub fn claim_due(
    conn: &Connection,
    cipher: &SecretCipher,
    lease: &Lease,
    limit: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut statement = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 3, lease_owner = ?1, lease_token = ?2,
             next_attempt_at = ?3, updated_at = ?4
             WHERE id IN (SELECT id FROM deliveries WHERE next_attempt_at <= ?4
                          ORDER BY next_attempt_at LIMIT ?5)
             RETURNING id, msg_id, endpoint_id, attempts, trigger_type",
        )
        .map_err(db_error)?;
    let due = statement
        .query_map(
            params![
                lease.owner,
                lease.token,
                lease.until,
                lease.now,
                limit as i64
            ],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, u32>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            },
        )
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;

    // Deliveries of one batch often share endpoints; load each once.
    let mut endpoints: HashMap<String, Option<Endpoint>> = HashMap::new();
    let mut claimed = Vec::with_capacity(due.len());
    for (delivery_id, msg_id, endpoint_id, attempts, trigger) in due {
        let endpoint = match endpoints.get(&endpoint_id) {
            Some(found) => found.clone(),
            None => {
                let found = endpoint_by_id(conn, cipher, &endpoint_id)?;
                endpoints.insert(endpoint_id.clone(), found.clone());
                found
            }
        };
        let (Some(endpoint), Some(message)) = (endpoint, message_by_id(conn, &msg_id)?) else {
            continue; // Deleted under us; the cascade removes the delivery too.
        };
        let mut delivery = ClaimedDelivery::new(delivery_id, lease, &message, &endpoint, attempts);
        if trigger == TriggerType::Manual as i64 {
            delivery.trigger_type = TriggerType::Manual;
        }
        claimed.push(delivery);
    }
    Ok(claimed)
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

pub fn next_due(conn: &Connection) -> StoreResult<Option<i64>> {
    conn.prepare_cached(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL",
    )
    .and_then(|mut s| s.query_row([], |row| row.get(0)))
    .map_err(db_error)
}

/// Applies results whose lease still holds; returns how many did.
pub fn record_attempts(conn: &Connection, results: &[AttemptResult]) -> StoreResult<usize> {
    let mut update = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4,
             lease_owner = NULL, lease_token = NULL, updated_at = ?5
             WHERE id = ?1 AND lease_token = ?2 AND status = 3",
        )
        .map_err(db_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
             response_status_code, response, response_duration_ms, trigger_type, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db_error)?;
    let now = now_millis();
    let mut applied = 0;
    for result in results {
        let (status, next_attempt_at) = match result.next {
            NextStep::Done => (DeliveryStatus::Success, None),
            NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
            NextStep::Exhausted => (DeliveryStatus::Failed, None),
        };
        let changed = update
            .execute(params![
                result.delivery_id,
                result.lease_token,
                status as i64,
                next_attempt_at,
                now
            ])
            .map_err(db_error)?;
        if changed == 0 {
            continue; // The lease was lost: another claim owns this delivery now.
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
        applied += 1;
    }
    Ok(applied)
}

/// Makes the deliveries leased by `owner` (or by anyone, with `None`) due again now.
pub fn release_leases(conn: &Connection, owner: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "UPDATE deliveries SET status = 1, next_attempt_at = ?1, lease_owner = NULL,
         lease_token = NULL WHERE status = 3 AND (?2 IS NULL OR lease_owner = ?2)",
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
        "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
         trigger_type, updated_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, 1, ?5)
         ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, attempts = 0,
           next_attempt_at = excluded.next_attempt_at, trigger_type = 1,
           updated_at = excluded.updated_at
         WHERE deliveries.status != 3",
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
