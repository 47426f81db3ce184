//! The pull feed: an application's messages in commit order.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use super::rows::{self, MESSAGE_COLUMNS};
use crate::store::{FeedPosition, Message, StoreResult};

/// The feed of an application after `after`, in (transaction id, sequence) order. Only rows
/// whose transaction id is below the xmin of the statement's snapshot are read: every
/// transaction before that xmin has finished, so nothing can still commit in front of them.
/// A transaction that stays open holds the feed back until it ends; it never reorders it.
pub async fn read_feed(
    pool: &PgPool,
    app_id: &str,
    after: FeedPosition,
    limit: usize,
) -> StoreResult<Vec<(FeedPosition, Message)>> {
    let rows = sqlx::query(&format!(
        "SELECT m.feed_xid::text::bigint AS feed_group, m.feed_seq, {MESSAGE_COLUMNS}
         FROM messages m JOIN message_payloads p ON p.msg_id = m.id
         WHERE m.app_id = $1
           AND (m.feed_xid, m.feed_seq) > ($2::bigint::text::xid8, $3)
           AND m.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY m.feed_xid, m.feed_seq
         LIMIT $4"
    ))
    .bind(app_id)
    .bind(after.group)
    .bind(after.seq)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let position = FeedPosition {
                group: row.try_get("feed_group")?,
                seq: row.try_get("feed_seq")?,
            };
            Ok((position, rows::message(row)?))
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db_error)
}
