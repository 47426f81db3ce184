//! Messages: reading them back, sending one to one endpoint, removing a payload, and making
//! one delivery due again on request. Ingest, batched, is [`super::ingest`].

use sqlx::postgres::PgPool;

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, MESSAGE_COLUMNS};
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::status::{PENDING, SENDING};
use crate::store::trigger::MANUAL;
use crate::store::{
    DeliveryStatus, Message, MessageFilter, MessageSearch, PageRequest, StoreResult,
};

/// Inserts a message and one delivery of it, due now, to one endpoint of its application, in
/// one statement.
pub async fn insert_message_to(
    conn: impl sqlx::PgExecutor<'_>,
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
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
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
    add_filter(&mut query, filter);
    query.fetch(pool, page, "m.id", rows::message).await
}

/// Messages of every application, or of one, for the operator dashboard.
pub async fn search_messages(
    pool: &PgPool,
    search: &MessageSearch,
    page: &PageRequest,
) -> StoreResult<Vec<Message>> {
    let mut query = ListQuery::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN message_payloads p ON p.msg_id = m.id
         WHERE TRUE"
    ));
    if let Some(app_id) = &search.app_id {
        query.bind(" AND m.app_id = ", app_id.to_string());
    }
    if let Some(text) = &search.text {
        // Each branch has its own index, so the OR is a union of three lookups.
        query
            .bind(" AND (m.id = ", text.clone())
            .bind(" OR m.event_id = ", text.clone())
            .bind(" OR m.ordering_key = ", text.clone())
            .push(")");
    }
    add_filter(&mut query, &search.filter);
    query.fetch(pool, page, "m.id", rows::message).await
}

fn add_filter(query: &mut ListQuery<'_>, filter: &MessageFilter) {
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
    if let Some(key) = &filter.ordering_key {
        query.bind(" AND m.ordering_key = ", key.clone());
    }
    if let Some(statuses) = &filter.delivery_statuses {
        let codes: Vec<i16> = statuses.iter().map(|s| *s as i16).collect();
        query
            .bind(
                " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status = ANY(",
                codes,
            )
            .push("))");
    }
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

/// The rest of an expunge statement after a `target` CTE of message ids: flag the messages,
/// blank their payloads, cancel their deliveries that still had work (`$3` the cancelled
/// status, `$4` now), and count the messages.
pub(super) const EXPUNGE: &str = "flagged AS (
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
