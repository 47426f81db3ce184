//! Reading attempts and deliveries' states, always within one application.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS};
use crate::store::cipher::SecretCipher;
use crate::store::{
    Attempt, AttemptFilter, DeliveryState, Endpoint, Message, PageRequest, StoreResult,
};

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
        query.and("msg_id = ?", String::from(msg_id.clone()));
    }
    if let Some(endpoint_id) = &filter.endpoint_id {
        query.and("endpoint_id = ?", String::from(endpoint_id.clone()));
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
    // Paged by the delivery's own `msg_id` (equal to `m.id` through the join), so the
    // endpoint's index gives the page in order instead of a sort of every delivery it has.
    .fetch(conn, page, "d.msg_id", |row| {
        Ok((rows::message(row)?, rows::delivery_state(row)?))
    })
}
