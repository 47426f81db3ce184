//! Endpoint check reports ([`crate::store::checks`]).

use sqlx::postgres::PgPool;

use super::connection::db_error;
use crate::store::checks::{endpoint_check, EndpointCheck, KEPT_PER_ENDPOINT};
use crate::store::StoreResult;

/// Keeps `check` and drops the endpoint's reports beyond the newest [`KEPT_PER_ENDPOINT`].
pub async fn record(pool: &PgPool, check: &EndpointCheck) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query(
        "INSERT INTO endpoint_checks (endpoint_id, checked_at, app_id, passed, report)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (endpoint_id, checked_at) DO UPDATE
           SET passed = EXCLUDED.passed, report = EXCLUDED.report",
    )
    .bind(check.endpoint_id.as_str())
    .bind(check.checked_at)
    .bind(check.app_id.as_str())
    .bind(check.passed)
    .bind(&check.report)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "DELETE FROM endpoint_checks WHERE endpoint_id = $1 AND checked_at NOT IN
           (SELECT checked_at FROM endpoint_checks WHERE endpoint_id = $1
            ORDER BY checked_at DESC LIMIT $2)",
    )
    .bind(check.endpoint_id.as_str())
    .bind(KEPT_PER_ENDPOINT as i64)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// The endpoint's reports, newest first.
pub async fn list(
    pool: &PgPool,
    app_id: &str,
    endpoint_id: &str,
    limit: usize,
) -> StoreResult<Vec<EndpointCheck>> {
    let rows = sqlx::query(
        "SELECT * FROM endpoint_checks WHERE app_id = $1 AND endpoint_id = $2
         ORDER BY checked_at DESC LIMIT $3",
    )
    .bind(app_id)
    .bind(endpoint_id)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(endpoint_check)
        .collect::<sqlx::Result<_>>()
        .map_err(db_error)
}
