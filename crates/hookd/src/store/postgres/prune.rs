//! Retention: deleting what is older than the retention period, and payloads past their own
//! deadline.

use sqlx::postgres::PgPool;

use super::connection::db_error;
use super::messages::EXPUNGE;
use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::domain::time::now_millis;
use crate::store::activity::hour_of;
use crate::store::dashboard::minute_of;
use crate::store::{DeliveryStatus, StoreResult};

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
    // Hourly counts wholly before the cut go with the attempts they counted. They are a few
    // rows per endpoint and hour, so they are neither limited nor counted in the answer.
    sqlx::query("DELETE FROM endpoint_activity WHERE hour < $1")
        .bind(hour_of(before))
        .execute(pool)
        .await
        .map_err(db_error)?;
    // So do the dashboard's per-minute traffic, its audit log and nodes long gone.
    sqlx::query("DELETE FROM traffic_minutes WHERE minute < $1")
        .bind(minute_of(before))
        .execute(pool)
        .await
        .map_err(db_error)?;
    for table in [
        "DELETE FROM audit_log WHERE at < $1",
        "DELETE FROM nodes WHERE heartbeat_at < $1",
    ] {
        sqlx::query(table)
            .bind(before)
            .execute(pool)
            .await
            .map_err(db_error)?;
    }
    Ok(attempts + u64::try_from(messages).unwrap_or(0))
}
