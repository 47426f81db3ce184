//! The operator dashboard's queries ([`crate::store::dashboard`]).

use sqlx::postgres::{PgPool, PgRow};

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, APP_COLUMNS, ENDPOINT_COLUMNS};
use crate::store::cipher::SecretCipher;
use crate::store::dashboard::{contains, rows as map};
use crate::store::{
    ApiToken, Application, AuditEntry, AuditFilter, Endpoint, EndpointCounts, EndpointLatency,
    NodeReport, PageRequest, StoreResult, TokenKind, TrafficMinute,
};

fn all<T>(rows: Vec<PgRow>, map: impl Fn(&PgRow) -> sqlx::Result<T>) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(map)
        .collect::<sqlx::Result<_>>()
        .map_err(db_error)
}

pub async fn list_api_tokens(pool: &PgPool, now: i64) -> StoreResult<Vec<ApiToken>> {
    let found = sqlx::query(
        "SELECT * FROM api_tokens WHERE kind = $1 AND NOT revoked
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC",
    )
    .bind(TokenKind::Api.as_str())
    .bind(now)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    all(found, rows::api_token)
}

pub async fn revoke_api_token(pool: &PgPool, token_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked = TRUE WHERE id = $1 AND kind = $2 AND NOT revoked",
    )
    .bind(token_id)
    .bind(TokenKind::Api.as_str())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

pub async fn search_apps(
    pool: &PgPool,
    text: &str,
    page: &PageRequest,
) -> StoreResult<Vec<Application>> {
    let mut query = ListQuery::new(&format!(
        "SELECT {APP_COLUMNS} FROM applications a WHERE TRUE"
    ));
    if !text.is_empty() {
        query
            .bind(" AND (a.id = ", text.to_string())
            .bind(" OR a.uid ILIKE ", contains(text))
            .bind(" OR a.name ILIKE ", contains(text))
            .push(")");
    }
    query.fetch(pool, page, "a.id", rows::application).await
}

pub async fn search_endpoints(
    pool: &PgPool,
    cipher: &SecretCipher,
    text: &str,
    limit: usize,
) -> StoreResult<Vec<Endpoint>> {
    let found = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.url ILIKE $1
         ORDER BY e.id DESC LIMIT $2"
    ))
    .bind(contains(text))
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    all(found, |row| rows::endpoint(row, cipher))
}

pub async fn endpoint_counts(pool: &PgPool) -> StoreResult<EndpointCounts> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS total,
                COUNT(*) FILTER (WHERE NOT disabled AND first_failure_at IS NOT NULL) AS failing,
                COUNT(*) FILTER (WHERE disabled) AS disabled
         FROM endpoints",
    )
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    map::endpoint_counts(&row).map_err(db_error)
}

pub async fn slowest_endpoints(
    pool: &PgPool,
    since_hour: i64,
    limit: usize,
) -> StoreResult<Vec<EndpointLatency>> {
    let found = sqlx::query(
        "SELECT a.app_id, a.endpoint_id, e.url, a.attempts, a.mean_ms FROM (
             SELECT endpoint_id, MIN(app_id) AS app_id, SUM(succeeded + failed)::bigint AS attempts,
                    (SUM(duration_ms) / SUM(succeeded + failed))::bigint AS mean_ms
             FROM endpoint_activity WHERE hour >= $1
             GROUP BY endpoint_id HAVING SUM(succeeded + failed) > 0
         ) a JOIN endpoints e ON e.id = a.endpoint_id
         ORDER BY a.mean_ms DESC, a.endpoint_id LIMIT $2",
    )
    .bind(since_hour)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    all(found, map::endpoint_latency)
}

pub async fn add_traffic(
    pool: &PgPool,
    node_id: &str,
    minutes: &[TrafficMinute],
) -> StoreResult<()> {
    let count = |f: fn(&TrafficMinute) -> u64| -> Vec<i64> {
        minutes
            .iter()
            .map(|m| i64::try_from(f(m)).unwrap_or(i64::MAX))
            .collect()
    };
    let minute: Vec<i64> = minutes.iter().map(|m| m.minute).collect();
    sqlx::query(
        "INSERT INTO traffic_minutes (minute, node_id, messages_in, delivered, failed)
         SELECT m, $2, i, d, f FROM UNNEST($1::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
             AS t(m, i, d, f)
         ON CONFLICT (minute, node_id) DO UPDATE
         SET messages_in = traffic_minutes.messages_in + excluded.messages_in,
             delivered = traffic_minutes.delivered + excluded.delivered,
             failed = traffic_minutes.failed + excluded.failed",
    )
    .bind(&minute)
    .bind(node_id)
    .bind(count(|m| m.messages_in))
    .bind(count(|m| m.delivered))
    .bind(count(|m| m.failed))
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn traffic_since(pool: &PgPool, since_minute: i64) -> StoreResult<Vec<TrafficMinute>> {
    let found = sqlx::query(
        "SELECT minute, SUM(messages_in)::bigint AS messages_in,
                SUM(delivered)::bigint AS delivered, SUM(failed)::bigint AS failed
         FROM traffic_minutes WHERE minute >= $1 GROUP BY minute ORDER BY minute",
    )
    .bind(since_minute)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    all(found, map::traffic_minute)
}

pub async fn report_node(pool: &PgPool, node: &NodeReport) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO nodes (id, role, version, started_at, heartbeat_at, in_flight)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET role = excluded.role, version = excluded.version,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
             in_flight = excluded.in_flight",
    )
    .bind(&node.id)
    .bind(&node.role)
    .bind(&node.version)
    .bind(node.started_at)
    .bind(node.heartbeat_at)
    .bind(i64::try_from(node.in_flight).unwrap_or(i64::MAX))
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn list_nodes(pool: &PgPool, since: i64) -> StoreResult<Vec<NodeReport>> {
    let found = sqlx::query("SELECT * FROM nodes WHERE heartbeat_at >= $1 ORDER BY id")
        .bind(since)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    all(found, map::node)
}

pub async fn append_audit(pool: &PgPool, entry: &AuditEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, app_id, target, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&entry.id)
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.app_id)
    .bind(&entry.target)
    .bind(&entry.detail)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn list_audit(
    pool: &PgPool,
    filter: &AuditFilter,
    page: &PageRequest,
) -> StoreResult<Vec<AuditEntry>> {
    let mut query = ListQuery::new("SELECT * FROM audit_log WHERE TRUE");
    if let Some(actor) = &filter.actor {
        query.bind(" AND actor = ", actor.clone());
    }
    if let Some(action) = &filter.action {
        query.bind(" AND action = ", action.clone());
    }
    if let Some(app_id) = &filter.app_id {
        query.bind(" AND app_id = ", app_id.to_string());
    }
    query.fetch(pool, page, "id", map::audit_entry).await
}
