//! Reading attempts and deliveries' states, always within one application.

use sqlx::postgres::PgPool;

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, ATTEMPT_COLUMNS, ENDPOINT_COLUMNS, MESSAGE_COLUMNS};
use crate::store::cipher::SecretCipher;
use crate::store::{
    Attempt, AttemptFilter, DeliveryState, Endpoint, Message, PageRequest, StoreResult,
};

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
        // Paged by the delivery's own `msg_id` (equal to `m.id` through the join), so the
        // endpoint's index gives the page in order instead of a sort of every delivery it has.
        .fetch(pool, page, "d.msg_id", |row| {
            Ok((rows::message(row)?, rows::delivery_state(row)?))
        })
        .await
}
