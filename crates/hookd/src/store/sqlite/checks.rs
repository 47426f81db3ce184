//! Endpoint check reports ([`crate::store::checks`]).

use rusqlite::{params, Connection};

use super::connection::db_error;
use crate::store::checks::{endpoint_check, EndpointCheck, KEPT_PER_ENDPOINT};
use crate::store::StoreResult;

/// Keeps `check` and drops the endpoint's reports beyond the newest [`KEPT_PER_ENDPOINT`]
/// (both in the writer's one transaction).
pub fn record(conn: &Connection, check: &EndpointCheck) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO endpoint_checks (endpoint_id, checked_at, app_id, passed, report)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            check.endpoint_id.as_str(),
            check.checked_at,
            check.app_id.as_str(),
            check.passed,
            check.report
        ],
    )
    .map_err(db_error)?;
    conn.execute(
        "DELETE FROM endpoint_checks WHERE endpoint_id = ?1 AND checked_at NOT IN
           (SELECT checked_at FROM endpoint_checks WHERE endpoint_id = ?1
            ORDER BY checked_at DESC LIMIT ?2)",
        params![check.endpoint_id.as_str(), KEPT_PER_ENDPOINT as i64],
    )
    .map_err(db_error)?;
    Ok(())
}

/// The endpoint's reports, newest first.
pub fn list(
    conn: &Connection,
    app_id: &str,
    endpoint_id: &str,
    limit: usize,
) -> StoreResult<Vec<EndpointCheck>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT * FROM endpoint_checks WHERE app_id = ?1 AND endpoint_id = ?2
             ORDER BY checked_at DESC LIMIT ?3",
        )
        .map_err(db_error)?;
    let rows = statement
        .query_map(params![app_id, endpoint_id, limit as i64], |row| {
            endpoint_check(row)
        })
        .map_err(db_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_error)
}
