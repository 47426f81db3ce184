//! The portal's view of an endpoint's recent attempts.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::store::{ActivityBucket, EndpointActivity, StoreResult};

pub async fn endpoint_activity(
    pool: &PgPool,
    app_id: &str,
    endpoint_id: &str,
    since: i64,
    bucket_ms: i64,
) -> StoreResult<EndpointActivity> {
    let failing_since: Option<Option<i64>> =
        sqlx::query_scalar("SELECT first_failure_at FROM endpoints WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(endpoint_id)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
    let Some(failing_since) = failing_since else {
        return Ok(EndpointActivity::default());
    };
    // Attempt ids grow with time, so the window is an id range of the endpoint's index.
    let rows = sqlx::query(
        "SELECT (created_at - $4) / $5 AS bucket,
                COUNT(*) FILTER (WHERE success) AS succeeded, COUNT(*) AS total
         FROM attempts
         WHERE endpoint_id = $1 AND app_id = $2 AND id >= $3 AND created_at >= $4
         GROUP BY bucket ORDER BY bucket",
    )
    .bind(endpoint_id)
    .bind(app_id)
    .bind(lower_bound_at(IdPrefix::Attempt, since))
    .bind(since)
    .bind(bucket_ms.max(1))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let buckets = rows
        .iter()
        .map(|row| {
            let succeeded: i64 = row.try_get("succeeded")?;
            let total: i64 = row.try_get("total")?;
            Ok(ActivityBucket {
                index: row.try_get("bucket")?,
                succeeded: u64::try_from(succeeded).unwrap_or(0),
                failed: u64::try_from(total - succeeded).unwrap_or(0),
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(EndpointActivity {
        failing_since,
        buckets,
    })
}
