//! The operational outbox's SQL ([`crate::store::outbox`]).

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use super::messages;
use crate::store::{OutboxRow, Published, StoreResult};

/// Writes `rows` (events as JSON) in the caller's transaction, in one statement; answers how
/// many.
pub async fn insert(tx: &mut sqlx::PgConnection, rows: &[String], now: i64) -> StoreResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO operational_outbox (event, created_at)
         SELECT event, $2 FROM UNNEST($1::text[]) WITH ORDINALITY AS r(event, n) ORDER BY n",
    )
    .bind(rows)
    .bind(now)
    .execute(tx)
    .await
    .map_err(db_error)?;
    Ok(rows.len())
}

pub async fn read(pool: &PgPool, limit: usize) -> StoreResult<Vec<OutboxRow>> {
    let rows =
        sqlx::query("SELECT id, event, created_at FROM operational_outbox ORDER BY id LIMIT $1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            Ok(OutboxRow {
                id: row.try_get("id")?,
                event: row.try_get("event")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_error)
}

/// Deletes the rows still there and commits their messages, in one transaction. Rows another
/// node's publishing transaction holds are skipped (`SKIP LOCKED`), and rows it already
/// deleted are gone, so only the node whose delete took a row publishes it.
pub async fn publish(
    pool: &PgPool,
    endpoint_id: &str,
    published: &[Published],
) -> StoreResult<Vec<i64>> {
    let ids: Vec<i64> = published.iter().map(|p| p.id).collect();
    let mut tx = pool.begin().await.map_err(db_error)?;
    let taken: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM operational_outbox WHERE id IN (
            SELECT id FROM operational_outbox WHERE id = ANY($1)
            ORDER BY id FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    for row in published.iter().filter(|p| taken.contains(&p.id)) {
        if let Some(message) = &row.message {
            messages::insert_message_to(&mut *tx, message, endpoint_id).await?;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(taken)
}
