//! Messages: ingest (the message and its fan-out into deliveries), reading them back,
//! removing a payload, and making one delivery due again on request.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::catalog;
use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, to_json, MESSAGE_COLUMNS};
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::cipher::SecretCipher;
use crate::store::status::{HELD, PENDING, SENDING};
use crate::store::trigger::MANUAL;
use crate::store::{
    ClaimedDelivery, DeliveryStatus, Endpoint, Ingested, Lease, Message, MessageFilter,
    MessageSearch, PageRequest, StoreResult,
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
    add_filter(&mut query, filter);
    query.fetch(conn, page, "m.id", rows::message)
}

/// Messages of every application, or of one, for the operator dashboard.
pub fn search_messages(
    conn: &Connection,
    search: &MessageSearch,
    page: &PageRequest,
) -> StoreResult<Vec<Message>> {
    let mut query = ListQuery::new(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE 1 = 1"),
        vec![],
    );
    if let Some(app_id) = &search.app_id {
        query.and("m.app_id = ?", app_id.clone());
    }
    if let Some(text) = &search.text {
        // Each branch has its own index, so the OR is a union of three lookups.
        query.and_all(
            "(m.id = ? OR m.event_id = ? OR m.ordering_key = ?)",
            vec![Value::Text(text.clone()); 3],
        );
    }
    add_filter(&mut query, &search.filter);
    query.fetch(conn, page, "m.id", rows::message)
}

fn add_filter(query: &mut ListQuery, filter: &MessageFilter) {
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
    if let Some(key) = &filter.ordering_key {
        query.and("m.ordering_key = ?", key.clone());
    }
    if let Some(statuses) = &filter.delivery_statuses {
        let codes: Vec<i64> = statuses.iter().map(|s| *s as i64).collect();
        query.and(
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id
                     AND d.status IN (SELECT value FROM json_each(?)))",
            rows::to_json(&codes),
        );
    }
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
