//! Queries for background tasks: create, read, and run one batch.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::connection::db_error;
use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::store::{
    BackgroundTask, DeliveryStatus, StoreError, StoreResult, TaskBatch, TaskKind, TaskStatus,
    TriggerType,
};

/// Running tasks looked at per batch, least recently advanced first.
const CANDIDATES: i64 = 16;

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
        .and_then(|mut s| s.query_row([task_id], task).optional())
        .map_err(db_error)?
        .transpose()
}

fn task(row: &Row<'_>) -> rusqlite::Result<StoreResult<BackgroundTask>> {
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    let (Some(kind), Some(status)) = (TaskKind::parse(&kind), TaskStatus::parse(&status)) else {
        return Ok(Err(StoreError::Database(format!(
            "background task with unknown kind {kind:?} or status {status:?}"
        ))));
    };
    Ok(Ok(BackgroundTask {
        id: row.get("id")?,
        app_id: row.get("app_id")?,
        kind,
        status,
        endpoint_id: row.get("endpoint_id")?,
        since: row.get("window_start")?,
        until: row.get("window_end")?,
        done: row.get("done")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    }))
}

/// Where a running task stands.
struct Progress {
    id: String,
    app_id: String,
    endpoint_id: String,
    /// Message ids of the window: from `start` (included) to `end` (excluded).
    start: String,
    end: String,
    /// The last message id made due, and the one before the batch that reached it.
    cursor: Option<String>,
    batch_after: Option<String>,
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
        .query_map([CANDIDATES], |row| {
            Ok(Progress {
                id: row.get(0)?,
                app_id: row.get(1)?,
                endpoint_id: row.get(2)?,
                start: lower_bound_at(IdPrefix::Message, row.get(3)?),
                end: lower_bound_at(IdPrefix::Message, row.get(4)?),
                cursor: row.get(5)?,
                batch_after: row.get(6)?,
            })
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
            s.query_row([&task.endpoint_id, &task.app_id], |row| row.get(0))
                .optional()
        })
        .map_err(db_error)?;
    if enabled != Some(true) {
        finish(conn, task, None, 0, TaskStatus::Failed, now)?;
        return Ok(Some(TaskBatch {
            task_id: task.id.clone(),
            made_due: 0,
            status: TaskStatus::Failed,
        }));
    }
    if let Some(cursor) = &task.cursor {
        // The previous batch's range still has deliveries due or in flight: wait for the
        // endpoint to work through them.
        let busy: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deliveries
                 WHERE endpoint_id = ?1 AND msg_id >= ?2 AND msg_id > ?3 AND msg_id <= ?4
                   AND (status = ?5 OR (status = ?6 AND next_attempt_at <= ?7)))",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        task.endpoint_id,
                        task.start,
                        task.batch_after.as_deref().unwrap_or(""),
                        cursor,
                        DeliveryStatus::Sending as i64,
                        DeliveryStatus::Pending as i64,
                        now
                    ],
                    |row| row.get(0),
                )
            })
            .map_err(db_error)?;
        if busy {
            return Ok(None);
        }
    }
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
                task.cursor.as_deref().unwrap_or(""),
                task.end,
                DeliveryStatus::Failed as i64,
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
    for (delivery_id, _) in &failed {
        due.execute(params![
            delivery_id,
            DeliveryStatus::Pending as i64,
            now,
            TriggerType::Manual as i64
        ])
        .map_err(db_error)?;
    }
    let made_due = failed.len() as u64;
    let status = if failed.len() < limit {
        TaskStatus::Finished
    } else {
        TaskStatus::Running
    };
    let last = failed.last().map(|(_, msg_id)| msg_id.as_str());
    finish(conn, task, last, made_due, status, now)?;
    Ok(Some(TaskBatch {
        task_id: task.id.clone(),
        made_due,
        status,
    }))
}

/// Records a batch: the new cursor (when the batch reached further), the count and status.
fn finish(
    conn: &Connection,
    task: &Progress,
    last: Option<&str>,
    made_due: u64,
    status: TaskStatus,
    now: i64,
) -> StoreResult<()> {
    let cursor = last.or(task.cursor.as_deref());
    conn.prepare_cached(
        "UPDATE background_tasks SET batch_after = ?2, cursor = ?3, done = done + ?4,
         status = ?5, updated_at = ?6 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            task.id,
            task.cursor,
            cursor,
            i64::try_from(made_due).unwrap_or(i64::MAX),
            status.as_str(),
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
