//! The portal's view of an endpoint's recent attempts: its hourly counts and failure clock.

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use crate::store::activity::hour_of;
use crate::store::{ActivityBucket, EndpointActivity, StoreResult};

pub fn endpoint_activity(
    conn: &Connection,
    app_id: &str,
    endpoint_id: &str,
    since: i64,
) -> StoreResult<EndpointActivity> {
    let failing_since: Option<Option<i64>> = conn
        .prepare_cached("SELECT first_failure_at FROM endpoints WHERE app_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row([app_id, endpoint_id], |row| row.get(0))
                .optional()
        })
        .map_err(db_error)?;
    let Some(failing_since) = failing_since else {
        return Ok(EndpointActivity::default());
    };
    let first = hour_of(since);
    let buckets = conn
        .prepare_cached(
            "SELECT hour - ?3, succeeded, failed FROM endpoint_activity
             WHERE endpoint_id = ?1 AND app_id = ?2 AND hour >= ?3 ORDER BY hour",
        )
        .and_then(|mut s| {
            s.query_map(params![endpoint_id, app_id, first], |row| {
                Ok(ActivityBucket {
                    index: row.get(0)?,
                    succeeded: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    failed: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                })
            })?
            .collect()
        })
        .map_err(db_error)?;
    Ok(EndpointActivity {
        failing_since,
        buckets,
    })
}
