//! The operator dashboard's queries ([`crate::store::dashboard`]).

use rusqlite::types::Value;
use rusqlite::{params, Connection};

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, ENDPOINT_COLUMNS};
use crate::store::cipher::SecretCipher;
use crate::store::dashboard::{contains, rows as map};
use crate::store::{
    ApiToken, Application, AuditEntry, AuditFilter, Endpoint, EndpointCounts, EndpointLatency,
    NodeReport, PageRequest, StoreResult, TokenKind, TrafficMinute,
};

pub fn list_api_tokens(conn: &Connection, now: i64) -> StoreResult<Vec<ApiToken>> {
    conn.prepare_cached(
        "SELECT * FROM api_tokens WHERE kind = ?1 AND revoked = 0
         AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id DESC",
    )
    .and_then(|mut s| {
        s.query_map(params![TokenKind::Api.as_str(), now], rows::api_token)?
            .collect()
    })
    .map_err(db_error)
}

pub fn revoke_api_token(conn: &Connection, token_id: &str) -> StoreResult<bool> {
    let changed = conn
        .execute(
            "UPDATE api_tokens SET revoked = 1 WHERE id = ?1 AND kind = ?2 AND revoked = 0",
            params![token_id, TokenKind::Api.as_str()],
        )
        .map_err(db_error)?;
    Ok(changed > 0)
}

pub fn search_apps(
    conn: &Connection,
    text: &str,
    page: &PageRequest,
) -> StoreResult<Vec<Application>> {
    let mut query = ListQuery::new("SELECT * FROM applications WHERE 1 = 1", vec![]);
    if !text.is_empty() {
        query.and_all(
            "(id = ? OR uid LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')",
            vec![
                Value::Text(text.into()),
                Value::Text(contains(text)),
                Value::Text(contains(text)),
            ],
        );
    }
    query.fetch(conn, page, "id", rows::application)
}

pub fn search_endpoints(
    conn: &Connection,
    cipher: &SecretCipher,
    text: &str,
    limit: usize,
) -> StoreResult<Vec<Endpoint>> {
    conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.url LIKE ?1 ESCAPE '\\'
         ORDER BY e.id DESC LIMIT ?2"
    ))
    .and_then(|mut s| {
        s.query_map(params![contains(text), limit as i64], |row| {
            rows::endpoint(row, cipher)
        })?
        .collect()
    })
    .map_err(db_error)
}

pub fn endpoint_counts(conn: &Connection) -> StoreResult<EndpointCounts> {
    conn.prepare_cached(
        "SELECT COUNT(*) AS total,
                COALESCE(SUM(disabled = 0 AND first_failure_at IS NOT NULL), 0) AS failing,
                COALESCE(SUM(disabled = 1), 0) AS disabled
         FROM endpoints",
    )
    .and_then(|mut s| s.query_row([], |row| map::endpoint_counts(row)))
    .map_err(db_error)
}

pub fn slowest_endpoints(
    conn: &Connection,
    since_hour: i64,
    limit: usize,
) -> StoreResult<Vec<EndpointLatency>> {
    conn.prepare_cached(
        "SELECT a.app_id, a.endpoint_id, e.url, a.attempts, a.mean_ms FROM (
             SELECT endpoint_id, MIN(app_id) AS app_id, SUM(succeeded + failed) AS attempts,
                    SUM(duration_ms) / SUM(succeeded + failed) AS mean_ms
             FROM endpoint_activity INDEXED BY endpoint_activity_by_hour WHERE hour >= ?1
             GROUP BY endpoint_id HAVING SUM(succeeded + failed) > 0
         ) a JOIN endpoints e ON e.id = a.endpoint_id
         ORDER BY a.mean_ms DESC, a.endpoint_id LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![since_hour, limit as i64], |row| {
            map::endpoint_latency(row)
        })?
        .collect()
    })
    .map_err(db_error)
}

pub fn add_traffic(conn: &Connection, node_id: &str, minutes: &[TrafficMinute]) -> StoreResult<()> {
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO traffic_minutes (minute, node_id, messages_in, delivered, failed)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (minute, node_id) DO UPDATE
             SET messages_in = messages_in + excluded.messages_in,
                 delivered = delivered + excluded.delivered, failed = failed + excluded.failed",
        )
        .map_err(db_error)?;
    for m in minutes {
        upsert
            .execute(params![
                m.minute,
                node_id,
                m.messages_in as i64,
                m.delivered as i64,
                m.failed as i64
            ])
            .map_err(db_error)?;
    }
    Ok(())
}

pub fn traffic_since(conn: &Connection, since_minute: i64) -> StoreResult<Vec<TrafficMinute>> {
    conn.prepare_cached(
        "SELECT minute, SUM(messages_in) AS messages_in, SUM(delivered) AS delivered,
                SUM(failed) AS failed
         FROM traffic_minutes WHERE minute >= ?1 GROUP BY minute ORDER BY minute",
    )
    .and_then(|mut s| {
        s.query_map([since_minute], |row| map::traffic_minute(row))?
            .collect()
    })
    .map_err(db_error)
}

pub fn report_node(conn: &Connection, node: &NodeReport) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (id, role, version, started_at, heartbeat_at, in_flight)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET role = excluded.role, version = excluded.version,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
             in_flight = excluded.in_flight",
    )
    .and_then(|mut s| {
        s.execute(params![
            node.id,
            node.role,
            node.version,
            node.started_at,
            node.heartbeat_at,
            node.in_flight as i64
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn list_nodes(conn: &Connection, since: i64) -> StoreResult<Vec<NodeReport>> {
    conn.prepare_cached("SELECT * FROM nodes WHERE heartbeat_at >= ?1 ORDER BY id")
        .and_then(|mut s| s.query_map([since], |row| map::node(row))?.collect())
        .map_err(db_error)
}

pub fn append_audit(conn: &Connection, entry: &AuditEntry) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (id, at, actor, action, app_id, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            entry.id,
            entry.at,
            entry.actor,
            entry.action,
            entry.app_id,
            entry.target,
            entry.detail
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn list_audit(
    conn: &Connection,
    filter: &AuditFilter,
    page: &PageRequest,
) -> StoreResult<Vec<AuditEntry>> {
    let mut query = ListQuery::new("SELECT * FROM audit_log WHERE 1 = 1", vec![]);
    if let Some(actor) = &filter.actor {
        query.and("actor = ?", actor.clone());
    }
    if let Some(action) = &filter.action {
        query.and("action = ?", action.clone());
    }
    if let Some(app_id) = &filter.app_id {
        query.and("app_id = ?", app_id.to_string());
    }
    query.fetch(conn, page, "id", |row| map::audit_entry(row))
}
