//! The pull feed: an application's messages in commit order.

use rusqlite::{params, Connection};

use super::connection::db_error;
use super::rows::{self, MESSAGE_COLUMNS};
use crate::store::{FeedPosition, Message, StoreResult};

/// The feed of an application after `after`. Readers see whole commits of the single writer,
/// which numbers messages in commit order, so every position answered is final.
pub fn read_feed(
    conn: &Connection,
    app_id: &str,
    after: FeedPosition,
    limit: usize,
) -> StoreResult<Vec<(FeedPosition, Message)>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT m.feed_seq, {MESSAGE_COLUMNS} FROM messages m
             WHERE m.app_id = ?1 AND m.feed_seq > ?2 ORDER BY m.feed_seq LIMIT ?3"
        ))
        .map_err(db_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(params![app_id, after.seq, limit], |row| {
            let position = FeedPosition {
                group: 0,
                seq: row.get("feed_seq")?,
            };
            Ok((position, rows::message(row)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(rows)
}
