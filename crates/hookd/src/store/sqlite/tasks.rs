//! Queries for background tasks: create, read, and run one batch.

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use super::rows;
use crate::store::tasks::{self, Conclusion, Gate, Progress};
use crate::store::{BackgroundTask, DeliveryStatus, StoreResult, TaskBatch, TriggerType};

pub fn insert(conn: &Connection, task: &BackgroundTask) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO background_tasks (id, app_id, kind, status, endpoint_id, window_start,
         window_end, done, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            task.id,
            task.app_id,
            task.kind.as_str(),
            task.status.as_str(),
            task.endpoint_id,
            task.since,
            task.until,
            i64::try_from(task.done).unwrap_or(i64::MAX),
            task.created_at,
            task.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn get(conn: &Connection, task_id: &str) -> StoreResult<Option<BackgroundTask>> {
    conn.prepare_cached("SELECT * FROM background_tasks WHERE id = ?1")
        .and_then(|mut s| s.query_row([task_id], rows::background_task).optional())
        .map_err(db_error)
}

/// Advances the first running task that can move by one batch.
pub fn run_batch(conn: &Connection, limit: usize, now: i64) -> StoreResult<Option<TaskBatch>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT id, app_id, endpoint_id, window_start, window_end, cursor, batch_after
             FROM background_tasks WHERE status = 'running' ORDER BY updated_at LIMIT ?1",
        )
        .map_err(db_error)?;
    let running = statement
        .query_map([tasks::CANDIDATES], |row| {
            Ok(Progress::new(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                (row.get(3)?, row.get(4)?),
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    for task in &running {
        if let Some(batch) = step(conn, task, limit, now)? {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

fn step(
    conn: &Connection,
    task: &Progress,
    limit: usize,
    now: i64,
) -> StoreResult<Option<TaskBatch>> {
    let enabled: Option<bool> = conn
        .prepare_cached("SELECT disabled = 0 FROM endpoints WHERE id = ?1 AND app_id = ?2")
        .and_then(|mut s| {
            s.query_row([task.endpoint_id.as_str(), task.app_id.as_str()], |row| {
                row.get(0)
            })
            .optional()
        })
        .map_err(db_error)?;
    let busy = match (enabled, task.previous_batch()) {
        (Some(true), Some(previous)) => previous_batch_busy(conn, task, previous, now)?,
        _ => false,
    };
    let conclusion = match tasks::gate(enabled, busy) {
        Gate::Fail => task.fail(),
        Gate::Wait => return Ok(None),
        Gate::Run => {
            let made = make_due(conn, task, limit, now)?;
            task.advance(&made, limit)
        }
    };
    finish(conn, &conclusion, now)?;
    Ok(Some(conclusion.batch))
}

/// Whether the previous batch's range, `(after, cursor]`, still has deliveries due or in
/// flight.
fn previous_batch_busy(
    conn: &Connection,
    task: &Progress,
    (after, cursor): (&str, &str),
    now: i64,
) -> StoreResult<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM deliveries
         WHERE endpoint_id = ?1 AND msg_id >= ?2 AND msg_id > ?3 AND msg_id <= ?4
           AND (status = ?5 OR (status = ?6 AND next_attempt_at <= ?7)))",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                task.endpoint_id,
                task.start,
                after,
                cursor,
                DeliveryStatus::Sending.code(),
                DeliveryStatus::Pending.code(),
                now
            ],
            |row| row.get(0),
        )
    })
    .map_err(db_error)
}

/// Makes up to `limit` of the task's failed deliveries after its cursor due now; answers their
/// message ids.
fn make_due(
    conn: &Connection,
    task: &Progress,
    limit: usize,
    now: i64,
) -> StoreResult<Vec<String>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT d.id, d.msg_id FROM deliveries d JOIN messages m ON m.id = d.msg_id
             WHERE d.endpoint_id = ?1 AND d.msg_id >= ?2 AND d.msg_id > ?3 AND d.msg_id < ?4
               AND d.status = ?5 AND m.payload_expired = 0
             ORDER BY d.msg_id LIMIT ?6",
        )
        .map_err(db_error)?;
    let failed = statement
        .query_map(
            params![
                task.endpoint_id,
                task.start,
                task.after(),
                task.end,
                DeliveryStatus::Failed.code(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    let mut due = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = 0, next_attempt_at = ?3,
             trigger_type = ?4, updated_at = ?3 WHERE id = ?1",
        )
        .map_err(db_error)?;
    let mut made = Vec::with_capacity(failed.len());
    for (delivery_id, msg_id) in failed {
        due.execute(params![
            delivery_id,
            DeliveryStatus::Pending.code(),
            now,
            TriggerType::Manual as i64
        ])
        .map_err(db_error)?;
        made.push(msg_id);
    }
    Ok(made)
}

/// Records a batch on its task: the new cursor, the count and the status.
fn finish(conn: &Connection, conclusion: &Conclusion, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE background_tasks SET batch_after = ?2, cursor = ?3, done = done + ?4,
         status = ?5, updated_at = ?6 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            conclusion.batch.task_id,
            conclusion.batch_after,
            conclusion.cursor,
            i64::try_from(conclusion.batch.made_due).unwrap_or(i64::MAX),
            conclusion.batch.status.as_str(),
            now
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

/// Deletes up to `limit` tasks that ended before `before`.
pub fn prune(conn: &Connection, before: i64, limit: i64) -> StoreResult<usize> {
    conn.prepare_cached(
        "DELETE FROM background_tasks WHERE rowid IN
         (SELECT rowid FROM background_tasks WHERE status != 'running' AND updated_at < ?1
          LIMIT ?2)",
    )
    .and_then(|mut s| s.execute(params![before, limit]))
    .map_err(db_error)
}
