//! Retention: deleting what is older than the retention period, and payloads past their own
//! deadline.

use rusqlite::{params, Connection};

use super::connection::db_error;
use super::messages::expunge_payload;
use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::store::activity::hour_of;
use crate::store::dashboard::minute_of;
use crate::store::StoreResult;

/// Expunges up to `limit` payloads whose retention ended by `now`; answers how many.
pub fn expire_payloads(conn: &Connection, now: i64, limit: i64) -> StoreResult<usize> {
    let mut statement = conn
        .prepare_cached(
            "SELECT id, app_id FROM messages WHERE payload_expired = 0 AND payload_expires_at <= ?1
             ORDER BY payload_expires_at LIMIT ?2",
        )
        .map_err(db_error)?;
    let due = statement
        .query_map(params![now, limit], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    for (msg_id, app_id) in &due {
        expunge_payload(conn, app_id, msg_id)?;
    }
    Ok(due.len())
}

/// Deletes up to `limit` attempts made before `before`, then up to `limit` messages created
/// before it whose deliveries have no work left (their deliveries and attempts follow by
/// cascade). Ids sort by creation time, so "before" is a range of the primary keys.
pub fn prune(conn: &Connection, before: i64, limit: usize) -> StoreResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let attempts = conn
        .prepare_cached(
            "DELETE FROM attempts WHERE id IN
             (SELECT id FROM attempts WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![lower_bound_at(IdPrefix::Attempt, before), limit]))
        .map_err(db_error)?;
    let messages = conn
        .prepare_cached(
            "DELETE FROM messages WHERE id IN
             (SELECT m.id FROM messages m WHERE m.id < ?1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.next_attempt_at IS NOT NULL)
              ORDER BY m.id LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![lower_bound_at(IdPrefix::Message, before), limit]))
        .map_err(db_error)?;
    // Hourly counts wholly before the cut go with the attempts they counted. They are a few
    // rows per endpoint and hour, so they are neither limited nor counted in the answer.
    conn.prepare_cached("DELETE FROM endpoint_activity WHERE hour < ?1")
        .and_then(|mut s| s.execute(params![hour_of(before)]))
        .map_err(db_error)?;
    // So do the dashboard's per-minute traffic, its audit log and nodes long gone.
    conn.prepare_cached("DELETE FROM traffic_minutes WHERE minute < ?1")
        .and_then(|mut s| s.execute(params![minute_of(before)]))
        .map_err(db_error)?;
    conn.prepare_cached("DELETE FROM audit_log WHERE at < ?1")
        .and_then(|mut s| s.execute(params![before]))
        .map_err(db_error)?;
    conn.prepare_cached("DELETE FROM nodes WHERE heartbeat_at < ?1")
        .and_then(|mut s| s.execute(params![before]))
        .map_err(db_error)?;
    Ok(u64::try_from(attempts + messages).unwrap_or(0))
}
