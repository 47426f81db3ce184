//! Queries for background tasks: create, read, and run one batch.
//!
//! A batch runs in one transaction that holds its task's row (`FOR UPDATE SKIP LOCKED`), so
//! nodes running batches at the same moment take different tasks, and a node that dies
//! mid-batch leaves nothing half done: its transaction rolls back and the task waits for the
//! next batch, on any node.

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Row;

use super::connection::db_error;
use super::rows;
use crate::store::tasks::{self, Conclusion, Gate, Progress};
use crate::store::{BackgroundTask, DeliveryStatus, StoreResult, TaskBatch, TriggerType};

pub async fn insert(pool: &PgPool, task: &BackgroundTask) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO background_tasks (id, app_id, kind, status, endpoint_id, window_start,
         window_end, done, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&task.id)
    .bind(&task.app_id)
    .bind(task.kind.as_str())
    .bind(task.status.as_str())
    .bind(&task.endpoint_id)
    .bind(task.since)
    .bind(task.until)
    .bind(i64::try_from(task.done).unwrap_or(i64::MAX))
    .bind(task.created_at)
    .bind(task.updated_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get(pool: &PgPool, task_id: &str) -> StoreResult<Option<BackgroundTask>> {
    let row = sqlx::query(
        "SELECT id, app_id, kind, status, endpoint_id, window_start, window_end, done,
                created_at, updated_at
         FROM background_tasks WHERE id = $1",
    )
    .bind(task_id)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::background_task)
        .transpose()
        .map_err(db_error)
}

/// Advances the first running task that can move by one batch, in one transaction.
pub async fn run_batch(pool: &PgPool, limit: usize, now: i64) -> StoreResult<Option<TaskBatch>> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let rows = sqlx::query(
        "SELECT id, app_id, endpoint_id, window_start, window_end, cursor, batch_after
         FROM background_tasks WHERE status = 'running' ORDER BY updated_at LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(tasks::CANDIDATES)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let mut batch = None;
    for row in &rows {
        let task = Progress::new(
            row.try_get("id").map_err(db_error)?,
            row.try_get("app_id").map_err(db_error)?,
            row.try_get("endpoint_id").map_err(db_error)?,
            (
                row.try_get("window_start").map_err(db_error)?,
                row.try_get("window_end").map_err(db_error)?,
            ),
            row.try_get("cursor").map_err(db_error)?,
            row.try_get("batch_after").map_err(db_error)?,
        );
        batch = step(&mut tx, &task, limit, now).await?;
        if batch.is_some() {
            break;
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(batch)
}

async fn step(
    conn: &mut PgConnection,
    task: &Progress,
    limit: usize,
    now: i64,
) -> StoreResult<Option<TaskBatch>> {
    let enabled: Option<bool> =
        sqlx::query_scalar("SELECT NOT disabled FROM endpoints WHERE id = $1 AND app_id = $2")
            .bind(&task.endpoint_id)
            .bind(&task.app_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
    let busy = match (enabled, task.previous_batch()) {
        (Some(true), Some(previous)) => previous_batch_busy(conn, task, previous, now).await?,
        _ => false,
    };
    let conclusion = match tasks::gate(enabled, busy) {
        Gate::Fail => task.fail(),
        Gate::Wait => return Ok(None),
        Gate::Run => {
            let made = make_due(conn, task, limit, now).await?;
            task.advance(&made, limit)
        }
    };
    finish(conn, &conclusion, now).await?;
    Ok(Some(conclusion.batch))
}

/// Whether the previous batch's range, `(after, cursor]`, still has deliveries due or in
/// flight.
async fn previous_batch_busy(
    conn: &mut PgConnection,
    task: &Progress,
    (after, cursor): (&str, &str),
    now: i64,
) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM deliveries
         WHERE endpoint_id = $1 AND msg_id >= $2 AND msg_id > $3 AND msg_id <= $4
           AND (status = $5 OR (status = $6 AND next_attempt_at <= $7)))",
    )
    .bind(&task.endpoint_id)
    .bind(&task.start)
    .bind(after)
    .bind(cursor)
    .bind(DeliveryStatus::Sending as i16)
    .bind(DeliveryStatus::Pending as i16)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)
}

/// Makes up to `limit` of the task's failed deliveries after its cursor due now, in one
/// statement; answers their message ids.
async fn make_due(
    conn: &mut PgConnection,
    task: &Progress,
    limit: usize,
    now: i64,
) -> StoreResult<Vec<String>> {
    sqlx::query_scalar(
        "WITH failed AS (
            SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.msg_id
            WHERE d.endpoint_id = $1 AND d.msg_id >= $2 AND d.msg_id > $3 AND d.msg_id < $4
              AND d.status = $5 AND NOT m.payload_expired
            ORDER BY d.msg_id LIMIT $6 FOR UPDATE OF d
         )
         UPDATE deliveries d SET status = $7, attempts = 0, next_attempt_at = $8,
                trigger_type = $9, updated_at = $8
         FROM failed WHERE d.id = failed.id
         RETURNING d.msg_id",
    )
    .bind(&task.endpoint_id)
    .bind(&task.start)
    .bind(task.after())
    .bind(&task.end)
    .bind(DeliveryStatus::Failed as i16)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(DeliveryStatus::Pending as i16)
    .bind(now)
    .bind(TriggerType::Manual as i16)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

/// Records a batch on its task: the new cursor, the count and the status.
async fn finish(conn: &mut PgConnection, conclusion: &Conclusion, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE background_tasks SET batch_after = $2, cursor = $3, done = done + $4,
         status = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(&conclusion.batch.task_id)
    .bind(&conclusion.batch_after)
    .bind(&conclusion.cursor)
    .bind(i64::try_from(conclusion.batch.made_due).unwrap_or(i64::MAX))
    .bind(conclusion.batch.status.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Deletes up to `limit` tasks that ended before `before`.
pub async fn prune(pool: &PgPool, before: i64, limit: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "WITH old AS (
            SELECT id FROM background_tasks WHERE status <> 'running' AND updated_at < $1
            LIMIT $2 FOR UPDATE SKIP LOCKED
         )
         DELETE FROM background_tasks t USING old WHERE t.id = old.id",
    )
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}
