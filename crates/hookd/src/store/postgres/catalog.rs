//! Queries for applications, endpoints, the event type catalog and API tokens.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, to_json, APP_COLUMNS, ENDPOINT_COLUMNS, EVENT_TYPE_COLUMNS};
use crate::domain::time::now_millis;
use crate::store::cipher::SecretCipher;
use crate::store::records;
use crate::store::status::HELD;
use crate::store::{
    ApiToken, Application, DeliveryStatus, Endpoint, EndpointChange, EndpointStats, EventType,
    PageRequest, StoreResult, TokenKind,
};

pub async fn insert_app(pool: &PgPool, app: &Application) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO applications (id, uid, name, throttle_rate, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
    )
    .bind(&app.id)
    .bind(&app.uid)
    .bind(&app.name)
    .bind(app.throttle_rate)
    .bind(to_json(&app.metadata))
    .bind(app.created_at)
    .bind(app.updated_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_app(pool: &PgPool, id_or_uid: &str) -> StoreResult<Option<Application>> {
    let row = sqlx::query(&format!(
        "SELECT {APP_COLUMNS} FROM applications a WHERE a.id = $1 OR a.uid = $1 LIMIT 1"
    ))
    .bind(id_or_uid)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::application)
        .transpose()
        .map_err(db_error)
}

pub async fn list_apps(pool: &PgPool, page: &PageRequest) -> StoreResult<Vec<Application>> {
    ListQuery::new(&format!(
        "SELECT {APP_COLUMNS} FROM applications a WHERE TRUE"
    ))
    .fetch(pool, page, "a.id", rows::application)
    .await
}

pub async fn update_app(pool: &PgPool, app: &Application) -> StoreResult<()> {
    sqlx::query(
        "UPDATE applications SET uid = $2, name = $3, throttle_rate = $4, metadata = $5::jsonb,
         updated_at = $6 WHERE id = $1",
    )
    .bind(&app.id)
    .bind(&app.uid)
    .bind(&app.name)
    .bind(app.throttle_rate)
    .bind(to_json(&app.metadata))
    .bind(app.updated_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Deletes an application with everything it owns. The hot tables have no foreign keys (see
/// the migration), so their rows go explicitly, in one statement and so one transaction.
pub async fn delete_app(pool: &PgPool, app_id: &str) -> StoreResult<bool> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH attempts_gone AS (DELETE FROM attempts WHERE app_id = $1),
              deliveries_gone AS (DELETE FROM deliveries WHERE app_id = $1),
              payloads_gone AS (DELETE FROM message_payloads
                                WHERE msg_id IN (SELECT id FROM messages WHERE app_id = $1)),
              messages_gone AS (DELETE FROM messages WHERE app_id = $1),
              tasks_gone AS (DELETE FROM background_tasks WHERE app_id = $1),
              app_gone AS (DELETE FROM applications WHERE id = $1 RETURNING id)
         SELECT COUNT(*) FROM app_gone",
    )
    .bind(app_id)
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(deleted > 0)
}

pub async fn insert_endpoint(
    conn: impl sqlx::PgExecutor<'_>,
    cipher: &SecretCipher,
    ep: &Endpoint,
) -> StoreResult<()> {
    let (secret, retiring) = records::seal_secrets(ep, cipher);
    sqlx::query(
        "INSERT INTO endpoints (id, app_id, uid, url, description, disabled, event_types,
         channels, throttle_rate, metadata, headers, secret, retiring_secrets, created_at,
         updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13::jsonb,
                 $14, $15)",
    )
    .bind(&ep.id)
    .bind(&ep.app_id)
    .bind(&ep.uid)
    .bind(&ep.url)
    .bind(&ep.description)
    .bind(ep.disabled)
    .bind(&ep.event_types)
    .bind(&ep.channels)
    .bind(ep.throttle_rate)
    .bind(to_json(&ep.metadata))
    .bind(to_json(&ep.headers))
    .bind(secret)
    .bind(retiring)
    .bind(ep.created_at)
    .bind(ep.updated_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_endpoint(
    pool: &PgPool,
    cipher: &SecretCipher,
    app_id: &str,
    id_or_uid: &str,
) -> StoreResult<Option<Endpoint>> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e
         WHERE e.app_id = $1 AND (e.id = $2 OR e.uid = $2) LIMIT 1"
    ))
    .bind(app_id)
    .bind(id_or_uid)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(|row| rows::endpoint(row, cipher))
        .transpose()
        .map_err(db_error)
}

/// Endpoints by id, whatever their application: for deliveries just claimed.
pub async fn endpoints_by_id(
    pool: &PgPool,
    cipher: &SecretCipher,
    ids: &[String],
) -> StoreResult<Vec<Endpoint>> {
    sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_error)?
    .iter()
    .map(|row| rows::endpoint(row, cipher))
    .collect::<sqlx::Result<Vec<_>>>()
    .map_err(db_error)
}

pub async fn list_endpoints(
    pool: &PgPool,
    cipher: &SecretCipher,
    app_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<Endpoint>> {
    let mut query = ListQuery::new(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE"));
    query.bind(" e.app_id = ", app_id.to_string());
    query
        .fetch(pool, page, "e.id", |row| rows::endpoint(row, cipher))
        .await
}

/// Saves an endpoint. Disabling it cancels its waiting deliveries in the same transaction: a
/// disabled endpoint receives nothing, and an attempt in flight can no longer record a retry
/// (its fenced update requires the `sending` state). Re-enabling it stops its failure clock.
pub async fn update_endpoint(
    pool: &PgPool,
    cipher: &SecretCipher,
    ep: &Endpoint,
    read_at: i64,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let written = update_endpoint_in(&mut tx, cipher, ep, read_at).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(written)
}

/// [`update_endpoint`] in the caller's transaction.
pub async fn update_endpoint_in(
    tx: &mut sqlx::PgConnection,
    cipher: &SecretCipher,
    ep: &Endpoint,
    read_at: i64,
) -> StoreResult<bool> {
    let (secret, retiring) = records::seal_secrets(ep, cipher);
    let written = sqlx::query(
        "UPDATE endpoints SET uid = $3, url = $4, description = $5, disabled = $6,
         event_types = $7, channels = $8, throttle_rate = $9, metadata = $10::jsonb,
         headers = $11::jsonb, secret = $12, retiring_secrets = $13::jsonb, updated_at = $14,
         first_failure_at = CASE WHEN disabled AND NOT $6 THEN NULL ELSE first_failure_at END
         WHERE id = $1 AND app_id = $2 AND updated_at = $15",
    )
    .bind(&ep.id)
    .bind(&ep.app_id)
    .bind(&ep.uid)
    .bind(&ep.url)
    .bind(&ep.description)
    .bind(ep.disabled)
    .bind(&ep.event_types)
    .bind(&ep.channels)
    .bind(ep.throttle_rate)
    .bind(to_json(&ep.metadata))
    .bind(to_json(&ep.headers))
    .bind(secret)
    .bind(retiring)
    .bind(ep.updated_at)
    .bind(read_at)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?
    .rows_affected();
    if written > 0 && ep.disabled {
        cancel_pending(tx, &[ep.id.as_str()], now_millis()).await?;
    }
    Ok(written > 0)
}

pub async fn delete_endpoint(
    conn: impl sqlx::PgExecutor<'_>,
    app_id: &str,
    endpoint_id: &str,
) -> StoreResult<bool> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH endpoint_gone AS (DELETE FROM endpoints WHERE id = $1 AND app_id = $2 RETURNING id),
              attempts_gone AS (DELETE FROM attempts
                                WHERE endpoint_id IN (SELECT id FROM endpoint_gone)),
              deliveries_gone AS (DELETE FROM deliveries
                                  WHERE endpoint_id IN (SELECT id FROM endpoint_gone))
         SELECT COUNT(*) FROM endpoint_gone",
    )
    .bind(endpoint_id)
    .bind(app_id)
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    Ok(deleted > 0)
}

/// Makes an announced change and writes its outbox `rows` in one transaction; true when the
/// change was made. Without rows (the outbox is off) it is the plain change.
pub async fn change_endpoint(
    pool: &PgPool,
    cipher: &SecretCipher,
    change: EndpointChange<'_>,
    rows: &[String],
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let changed = match change {
        EndpointChange::Create(ep) => insert_endpoint(&mut *tx, cipher, ep).await.map(|()| true),
        EndpointChange::Update { endpoint, read_at } => {
            update_endpoint_in(&mut tx, cipher, endpoint, read_at).await
        }
        EndpointChange::Delete {
            app_id,
            endpoint_id,
        } => delete_endpoint(&mut *tx, app_id.as_str(), endpoint_id.as_str()).await,
    }?;
    if changed {
        super::outbox::insert(&mut tx, rows, now_millis()).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(changed)
}

pub async fn endpoint_stats(
    pool: &PgPool,
    app_id: &str,
    endpoint_id: &str,
) -> StoreResult<EndpointStats> {
    let counts = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM deliveries WHERE app_id = $1 AND endpoint_id = $2
         GROUP BY status",
    )
    .bind(app_id)
    .bind(endpoint_id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let mut stats = EndpointStats::default();
    for row in counts {
        let status: i16 = row.try_get("status").map_err(db_error)?;
        let count: i64 = row.try_get("n").map_err(db_error)?;
        stats.add(i64::from(status), u64::try_from(count).unwrap_or(0))?;
    }
    Ok(stats)
}

pub async fn insert_event_type(pool: &PgPool, et: &EventType) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO event_types (name, description, archived, deprecated, schemas,
         feature_flag, validate_payloads, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)",
    )
    .bind(&et.name)
    .bind(&et.description)
    .bind(et.archived)
    .bind(et.deprecated)
    .bind(et.schemas.as_ref().map(to_json))
    .bind(&et.feature_flag)
    .bind(et.validate_payloads)
    .bind(et.created_at)
    .bind(et.updated_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn get_event_type(pool: &PgPool, name: &str) -> StoreResult<Option<EventType>> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_TYPE_COLUMNS} FROM event_types t WHERE t.name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::event_type)
        .transpose()
        .map_err(db_error)
}

pub async fn list_event_types(
    pool: &PgPool,
    page: &PageRequest,
    include_archived: bool,
) -> StoreResult<Vec<EventType>> {
    let scope = if include_archived {
        "TRUE"
    } else {
        "NOT t.archived"
    };
    ListQuery::new(&format!(
        "SELECT {EVENT_TYPE_COLUMNS} FROM event_types t WHERE {scope}"
    ))
    .fetch(pool, page, "t.name", rows::event_type)
    .await
}

pub async fn update_event_type(pool: &PgPool, et: &EventType) -> StoreResult<()> {
    sqlx::query(
        "UPDATE event_types SET description = $2, archived = $3, deprecated = $4,
         schemas = $5::jsonb, feature_flag = $6, validate_payloads = $7, updated_at = $8
         WHERE name = $1",
    )
    .bind(&et.name)
    .bind(&et.description)
    .bind(et.archived)
    .bind(et.deprecated)
    .bind(et.schemas.as_ref().map(to_json))
    .bind(&et.feature_flag)
    .bind(et.validate_payloads)
    .bind(et.updated_at)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn delete_event_type(pool: &PgPool, name: &str) -> StoreResult<bool> {
    let deleted = sqlx::query("DELETE FROM event_types WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(deleted.rows_affected() > 0)
}

pub async fn known_event_types(pool: &PgPool, names: &[String]) -> StoreResult<Vec<String>> {
    // Keeps the order of `names`, as the SQLite store does.
    sqlx::query_scalar(
        "SELECT t.name FROM UNNEST($1::text[]) WITH ORDINALITY AS wanted(name, n)
         JOIN event_types t ON t.name = wanted.name AND NOT t.archived ORDER BY wanted.n",
    )
    .bind(names)
    .fetch_all(pool)
    .await
    .map_err(db_error)
}

pub async fn insert_token(pool: &PgPool, token: &ApiToken) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_tokens
             (id, hash, name, app_id, revoked, created_at, kind, expires_at, capabilities)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&token.id)
    .bind(&token.hash)
    .bind(&token.name)
    .bind(&token.app_id)
    .bind(token.revoked)
    .bind(token.created_at)
    .bind(token.kind.as_str())
    .bind(token.expires_at)
    .bind(token.capabilities.as_ref().map(to_json))
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn find_token(pool: &PgPool, hash: &str) -> StoreResult<Option<ApiToken>> {
    let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1")
        .bind(hash)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref()
        .map(rows::api_token)
        .transpose()
        .map_err(db_error)
}

pub async fn revoke_token(pool: &PgPool, hash: &str) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE api_tokens SET revoked = TRUE WHERE hash = $1")
        .bind(hash)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

pub async fn redeem_token(
    pool: &PgPool,
    hash: &str,
    kind: TokenKind,
    now: i64,
) -> StoreResult<Option<ApiToken>> {
    let row = sqlx::query(
        "UPDATE api_tokens SET revoked = TRUE
         WHERE hash = $1 AND kind = $2 AND NOT revoked
           AND (expires_at IS NULL OR expires_at > $3)
         RETURNING *",
    )
    .bind(hash)
    .bind(kind.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(rows::api_token)
        .transpose()
        .map_err(db_error)
}

pub async fn count_tokens(pool: &PgPool) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Cancels the waiting deliveries of disabled endpoints. Rows another transaction holds at
/// this moment (a claim, or another node recording a result) are skipped rather than waited
/// for, which could deadlock with that transaction's endpoint lock; the claim query cancels
/// them when they next come due.
pub async fn cancel_pending(
    conn: &mut sqlx::PgConnection,
    endpoint_ids: &[&str],
    now: i64,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE deliveries d SET status = $2, next_attempt_at = NULL, lease_owner = NULL,
                lease_token = NULL, updated_at = $3
         FROM (SELECT id FROM deliveries
               WHERE endpoint_id = ANY($1) AND (next_attempt_at IS NOT NULL OR status = {HELD})
               FOR UPDATE SKIP LOCKED) waiting
         WHERE d.id = waiting.id"
    ))
    .bind(endpoint_ids)
    .bind(DeliveryStatus::Canceled as i16)
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Seals the endpoint secrets an older release stored in clear ([`records::seal_if_clear`]);
/// answers how many endpoints it sealed. Each row is rewritten only if it still holds what was
/// read, so nodes starting together cannot seal a secret twice.
pub async fn seal_clear_secrets(pool: &PgPool, cipher: &SecretCipher) -> StoreResult<u64> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT app_id, id, secret, retiring_secrets::text FROM endpoints
         WHERE secret NOT LIKE 'v1.%' OR retiring_secrets::text LIKE '%\"secret\": \"wh%'",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let mut sealed = 0;
    for (app_id, id, secret, retiring) in rows {
        let Some((new_secret, new_retiring)) =
            records::seal_if_clear(cipher, &app_id, &id, &secret, &retiring)
                .map_err(|e| crate::store::StoreError::Database(format!("endpoint {id}: {e}")))?
        else {
            continue;
        };
        sealed += sqlx::query(
            "UPDATE endpoints SET secret = $1, retiring_secrets = $2::jsonb
             WHERE app_id = $3 AND id = $4 AND secret = $5",
        )
        .bind(new_secret)
        .bind(new_retiring)
        .bind(&app_id)
        .bind(&id)
        .bind(&secret)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected();
    }
    Ok(sealed)
}
