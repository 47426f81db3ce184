//! The portal's view of an endpoint's recent attempts: its hourly counts and failure clock.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use crate::store::activity::hour_of;
use crate::store::{ActivityBucket, EndpointActivity, StoreResult};

pub async fn endpoint_activity(
    pool: &PgPool,
    app_id: &str,
    endpoint_id: &str,
    since: i64,
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
    let rows = sqlx::query(
        "SELECT hour - $3 AS bucket, succeeded, failed FROM endpoint_activity
         WHERE endpoint_id = $1 AND app_id = $2 AND hour >= $3 ORDER BY hour",
    )
    .bind(endpoint_id)
    .bind(app_id)
    .bind(hour_of(since))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let buckets = rows
        .iter()
        .map(|row| {
            Ok(ActivityBucket {
                index: row.try_get("bucket")?,
                succeeded: u64::try_from(row.try_get::<i64, _>("succeeded")?).unwrap_or(0),
                failed: u64::try_from(row.try_get::<i64, _>("failed")?).unwrap_or(0),
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(EndpointActivity {
        failing_since,
        buckets,
    })
}
