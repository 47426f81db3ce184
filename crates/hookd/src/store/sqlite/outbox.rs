//! The operational outbox's SQL ([`crate::store::outbox`]).

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use super::messages;
use crate::store::{OutboxRow, Published, StoreResult};

/// Writes `rows` (events as JSON) in the caller's transaction; answers how many.
pub fn insert(conn: &Connection, rows: &[String], now: i64) -> StoreResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut insert = conn
        .prepare_cached("INSERT INTO operational_outbox (event, created_at) VALUES (?1, ?2)")
        .map_err(db_error)?;
    for row in rows {
        insert.execute(params![row, now]).map_err(db_error)?;
    }
    Ok(rows.len())
}

pub fn read(conn: &Connection, limit: usize) -> StoreResult<Vec<OutboxRow>> {
    let mut select = conn
        .prepare_cached("SELECT id, event, created_at FROM operational_outbox ORDER BY id LIMIT ?1")
        .map_err(db_error)?;
    let rows = select
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
            Ok(OutboxRow {
                id: row.get(0)?,
                event: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_error)
}

/// Deletes each row still there and commits its message in the same (the caller's)
/// transaction. One process owns a SQLite file, so no other publisher races this one; the
/// delete decides all the same.
pub fn publish(
    conn: &Connection,
    endpoint_id: &str,
    published: &[Published],
) -> StoreResult<Vec<i64>> {
    let mut done = Vec::with_capacity(published.len());
    for row in published {
        let deleted: Option<i64> = conn
            .prepare_cached("DELETE FROM operational_outbox WHERE id = ?1 RETURNING id")
            .and_then(|mut s| s.query_row([row.id], |r| r.get(0)).optional())
            .map_err(db_error)?;
        if deleted.is_none() {
            continue;
        }
        if let Some(message) = &row.message {
            messages::insert_message_to(conn, message, endpoint_id)?;
        }
        done.push(row.id);
    }
    Ok(done)
}
