//! The portal's view of an endpoint's recent attempts.

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::store::{ActivityBucket, EndpointActivity, StoreResult};

pub fn endpoint_activity(
    conn: &Connection,
    app_id: &str,
    endpoint_id: &str,
    since: i64,
    bucket_ms: i64,
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
    // Attempt ids grow with time, so the window is an id range of the endpoint's index.
    let mut statement = conn
        .prepare_cached(
            "SELECT (created_at - ?4) / ?5 AS bucket, SUM(success), COUNT(*)
             FROM attempts
             WHERE endpoint_id = ?1 AND app_id = ?2 AND id >= ?3 AND created_at >= ?4
             GROUP BY bucket ORDER BY bucket",
        )
        .map_err(db_error)?;
    let buckets = statement
        .query_map(
            params![
                endpoint_id,
                app_id,
                lower_bound_at(IdPrefix::Attempt, since),
                since,
                bucket_ms.max(1)
            ],
            |row| {
                let succeeded: i64 = row.get(1)?;
                let total: i64 = row.get(2)?;
                Ok(ActivityBucket {
                    index: row.get(0)?,
                    succeeded: u64::try_from(succeeded).unwrap_or(0),
                    failed: u64::try_from(total - succeeded).unwrap_or(0),
                })
            },
        )
        .and_then(Iterator::collect)
        .map_err(db_error)?;
    Ok(EndpointActivity {
        failing_since,
        buckets,
    })
}
