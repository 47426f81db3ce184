//! Queries for applications, endpoints, the event type catalog and API tokens.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use super::list::ListQuery;
use super::rows::{self, to_json, ENDPOINT_COLUMNS};
use crate::domain::time::now_millis;
use crate::store::cipher::SecretCipher;
use crate::store::records;
use crate::store::status::HELD;
use crate::store::{
    ApiToken, Application, DeliveryStatus, Endpoint, EndpointChange, EndpointStats, EventType,
    PageRequest, StoreError, StoreResult, TokenKind,
};

/// An [`EndpointChange`] the writer thread can own.
pub enum OwnedChange {
    Create(Endpoint),
    Update(Endpoint, i64),
    Delete(String, String),
}

impl From<EndpointChange<'_>> for OwnedChange {
    fn from(change: EndpointChange<'_>) -> Self {
        match change {
            EndpointChange::Create(endpoint) => Self::Create(endpoint.clone()),
            EndpointChange::Update { endpoint, read_at } => Self::Update(endpoint.clone(), read_at),
            EndpointChange::Delete {
                app_id,
                endpoint_id,
            } => Self::Delete(app_id.to_string(), endpoint_id.to_string()),
        }
    }
}

/// Makes the change in the caller's transaction; true when it was made.
pub fn change_endpoint(
    conn: &Connection,
    cipher: &SecretCipher,
    change: &OwnedChange,
) -> StoreResult<bool> {
    match change {
        OwnedChange::Create(endpoint) => insert_endpoint(conn, cipher, endpoint).map(|()| true),
        OwnedChange::Update(endpoint, read_at) => update_endpoint(conn, cipher, endpoint, *read_at),
        OwnedChange::Delete(app_id, endpoint_id) => delete_endpoint(conn, app_id, endpoint_id),
    }
}

pub fn insert_app(conn: &Connection, app: &Application) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO applications (id, uid, name, throttle_rate, metadata, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            app.id,
            app.uid,
            app.name,
            app.throttle_rate,
            to_json(&app.metadata),
            app.created_at,
            app.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn get_app(conn: &Connection, id_or_uid: &str) -> StoreResult<Option<Application>> {
    conn.prepare_cached("SELECT * FROM applications WHERE id = ?1 OR uid = ?1 LIMIT 1")
        .and_then(|mut s| s.query_row([id_or_uid], rows::application).optional())
        .map_err(db_error)
}

pub fn list_apps(conn: &Connection, page: &PageRequest) -> StoreResult<Vec<Application>> {
    ListQuery::new("SELECT * FROM applications WHERE 1 = 1", vec![]).fetch(
        conn,
        page,
        "id",
        rows::application,
    )
}

pub fn update_app(conn: &Connection, app: &Application) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE applications SET uid = ?2, name = ?3, throttle_rate = ?4, metadata = ?5,
         updated_at = ?6 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            app.id,
            app.uid,
            app.name,
            app.throttle_rate,
            to_json(&app.metadata),
            app.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn delete_app(conn: &Connection, app_id: &str) -> StoreResult<bool> {
    let deleted = conn
        .execute("DELETE FROM applications WHERE id = ?1", [app_id])
        .map_err(db_error)?;
    Ok(deleted > 0)
}

pub fn insert_endpoint(conn: &Connection, cipher: &SecretCipher, ep: &Endpoint) -> StoreResult<()> {
    let (secret, retiring) = records::seal_secrets(ep, cipher);
    conn.prepare_cached(
        "INSERT INTO endpoints (id, app_id, uid, url, description, disabled, event_types,
         channels, throttle_rate, metadata, headers, secret, retiring_secrets, created_at,
         updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut s| {
        s.execute(params![
            ep.id,
            ep.app_id,
            ep.uid,
            ep.url,
            ep.description,
            ep.disabled,
            ep.event_types.as_ref().map(to_json),
            ep.channels.as_ref().map(to_json),
            ep.throttle_rate,
            to_json(&ep.metadata),
            to_json(&ep.headers),
            secret,
            retiring,
            ep.created_at,
            ep.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn get_endpoint(
    conn: &Connection,
    cipher: &SecretCipher,
    app_id: &str,
    id_or_uid: &str,
) -> StoreResult<Option<Endpoint>> {
    conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints e
         WHERE e.app_id = ?1 AND (e.id = ?2 OR e.uid = ?2) LIMIT 1"
    ))
    .and_then(|mut s| {
        s.query_row([app_id, id_or_uid], |row| rows::endpoint(row, cipher))
            .optional()
    })
    .map_err(db_error)
}

/// Every endpoint of an application, for fan-out.
pub fn app_endpoints(
    conn: &Connection,
    cipher: &SecretCipher,
    app_id: &str,
) -> StoreResult<Vec<Endpoint>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.app_id = ?1 AND e.disabled = 0"
        ))
        .map_err(db_error)?;
    let endpoints = statement
        .query_map([app_id], |row| rows::endpoint(row, cipher))
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(endpoints)
}

pub fn list_endpoints(
    conn: &Connection,
    cipher: &SecretCipher,
    app_id: &str,
    page: &PageRequest,
) -> StoreResult<Vec<Endpoint>> {
    ListQuery::new(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints e WHERE e.app_id = ?"),
        vec![Value::Text(app_id.into())],
    )
    .fetch(conn, page, "e.id", |row| rows::endpoint(row, cipher))
}

/// Saves an endpoint. Disabling it cancels its pending deliveries; re-enabling it stops its
/// failure clock, so it gets the whole period again.
pub fn update_endpoint(
    conn: &Connection,
    cipher: &SecretCipher,
    ep: &Endpoint,
    read_at: i64,
) -> StoreResult<bool> {
    let (secret, retiring) = records::seal_secrets(ep, cipher);
    let written = conn
        .prepare_cached(
            "UPDATE endpoints SET uid = ?3, url = ?4, description = ?5, disabled = ?6,
         event_types = ?7, channels = ?8, throttle_rate = ?9, metadata = ?10, headers = ?11,
         secret = ?12, retiring_secrets = ?13, updated_at = ?14,
         first_failure_at = CASE WHEN disabled AND NOT ?6 THEN NULL ELSE first_failure_at END
         WHERE id = ?1 AND app_id = ?2 AND updated_at = ?15",
        )
        .and_then(|mut s| {
            s.execute(params![
                ep.id,
                ep.app_id,
                ep.uid,
                ep.url,
                ep.description,
                ep.disabled,
                ep.event_types.as_ref().map(to_json),
                ep.channels.as_ref().map(to_json),
                ep.throttle_rate,
                to_json(&ep.metadata),
                to_json(&ep.headers),
                secret,
                retiring,
                ep.updated_at,
                read_at
            ])
        })
        .map_err(db_error)?;
    if written > 0 && ep.disabled {
        cancel_pending(conn, &ep.id)?;
    }
    Ok(written > 0)
}

/// A disabled endpoint receives nothing: its waiting deliveries stop, and an attempt in flight
/// can no longer record a retry (its fenced update requires the `sending` state).
pub fn cancel_pending(conn: &Connection, endpoint_id: &str) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "UPDATE deliveries SET status = ?2, next_attempt_at = NULL, lease_owner = NULL,
         lease_token = NULL, updated_at = ?3
         WHERE endpoint_id = ?1 AND (next_attempt_at IS NOT NULL OR status = {HELD})"
    ))
    .and_then(|mut s| {
        s.execute(params![
            endpoint_id,
            DeliveryStatus::Canceled as i64,
            now_millis()
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn delete_endpoint(conn: &Connection, app_id: &str, endpoint_id: &str) -> StoreResult<bool> {
    let deleted = conn
        .execute(
            "DELETE FROM endpoints WHERE id = ?1 AND app_id = ?2",
            [endpoint_id, app_id],
        )
        .map_err(db_error)?;
    Ok(deleted > 0)
}

pub fn endpoint_stats(
    conn: &Connection,
    app_id: &str,
    endpoint_id: &str,
) -> StoreResult<EndpointStats> {
    let mut statement = conn
        .prepare_cached(
            "SELECT status, COUNT(*) FROM deliveries WHERE app_id = ?1 AND endpoint_id = ?2
             GROUP BY status",
        )
        .map_err(db_error)?;
    let counts = statement
        .query_map([app_id, endpoint_id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, u64>(1)?))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    let mut stats = EndpointStats::default();
    for (status, count) in counts {
        stats.add(status, count)?;
    }
    Ok(stats)
}

pub fn insert_event_type(conn: &Connection, et: &EventType) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO event_types (name, description, archived, deprecated, schemas,
         feature_flag, validate_payloads, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            et.name,
            et.description,
            et.archived,
            et.deprecated,
            et.schemas.as_ref().map(to_json),
            et.feature_flag,
            et.validate_payloads,
            et.created_at,
            et.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn get_event_type(conn: &Connection, name: &str) -> StoreResult<Option<EventType>> {
    conn.prepare_cached("SELECT * FROM event_types WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], rows::event_type).optional())
        .map_err(db_error)
}

pub fn list_event_types(
    conn: &Connection,
    page: &PageRequest,
    include_archived: bool,
) -> StoreResult<Vec<EventType>> {
    let base = if include_archived {
        "SELECT * FROM event_types WHERE 1 = 1"
    } else {
        "SELECT * FROM event_types WHERE archived = 0"
    };
    ListQuery::new(base, vec![]).fetch(conn, page, "name", rows::event_type)
}

pub fn update_event_type(conn: &Connection, et: &EventType) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE event_types SET description = ?2, archived = ?3, deprecated = ?4, schemas = ?5,
         feature_flag = ?6, validate_payloads = ?7, updated_at = ?8 WHERE name = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            et.name,
            et.description,
            et.archived,
            et.deprecated,
            et.schemas.as_ref().map(to_json),
            et.feature_flag,
            et.validate_payloads,
            et.updated_at
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn delete_event_type(conn: &Connection, name: &str) -> StoreResult<bool> {
    let deleted = conn
        .execute("DELETE FROM event_types WHERE name = ?1", [name])
        .map_err(db_error)?;
    Ok(deleted > 0)
}

pub fn known_event_types(conn: &Connection, names: &[String]) -> StoreResult<Vec<String>> {
    let mut statement = conn
        .prepare_cached("SELECT name FROM event_types WHERE name = ?1 AND archived = 0")
        .map_err(db_error)?;
    let mut known = Vec::new();
    for name in names {
        if let Some(found) = statement
            .query_row([name], |row| row.get::<_, String>(0))
            .optional()
            .map_err(db_error)?
        {
            known.push(found);
        }
    }
    Ok(known)
}

pub fn insert_token(conn: &Connection, token: &ApiToken) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO api_tokens
             (id, hash, name, app_id, revoked, created_at, kind, expires_at, capabilities)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            token.id,
            token.hash,
            token.name,
            token.app_id,
            token.revoked,
            token.created_at,
            token.kind.as_str(),
            token.expires_at,
            token.capabilities.as_ref().map(to_json),
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

pub fn find_token(conn: &Connection, hash: &str) -> StoreResult<Option<ApiToken>> {
    conn.prepare_cached("SELECT * FROM api_tokens WHERE hash = ?1")
        .and_then(|mut s| s.query_row([hash], rows::api_token).optional())
        .map_err(db_error)
}

pub fn revoke_token(conn: &Connection, hash: &str) -> StoreResult<bool> {
    let changed = conn
        .execute("UPDATE api_tokens SET revoked = 1 WHERE hash = ?1", [hash])
        .map_err(db_error)?;
    Ok(changed > 0)
}

pub fn redeem_token(
    conn: &Connection,
    hash: &str,
    kind: TokenKind,
    now: i64,
) -> StoreResult<Option<ApiToken>> {
    conn.prepare_cached(
        "UPDATE api_tokens SET revoked = 1
         WHERE hash = ?1 AND kind = ?2 AND revoked = 0
           AND (expires_at IS NULL OR expires_at > ?3)
         RETURNING *",
    )
    .and_then(|mut s| {
        s.query_row(params![hash, kind.as_str(), now], rows::api_token)
            .optional()
    })
    .map_err(db_error)
}

pub fn count_tokens(conn: &Connection) -> StoreResult<u64> {
    conn.query_row("SELECT COUNT(*) FROM api_tokens", [], |row| row.get(0))
        .map_err(db_error)
}

/// Seals the endpoint secrets a first release stored in clear, on a connection of its own, and
/// leaves none of them on disk: with `secure_delete` the old row images are overwritten with
/// zeros, and the checkpoint moves the new pages over the old ones in the main file. Answers
/// how many endpoints it sealed.
pub fn seal_clear_secrets_in(path: &std::path::Path, cipher: &SecretCipher) -> StoreResult<usize> {
    let mut conn = Connection::open(path).map_err(db_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db_error)?;
    conn.execute_batch("PRAGMA secure_delete = ON")
        .map_err(db_error)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let sealed = seal_clear_secrets(&tx, cipher)?;
    tx.commit().map_err(db_error)?;
    if sealed > 0 {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(db_error)?;
    }
    Ok(sealed)
}

/// Seals the endpoint secrets a first release stored in clear ([`records::seal_if_clear`]);
/// answers how many endpoints it sealed. Each row is rewritten only if it still holds what was
/// read, so two processes opening the file at once cannot seal a secret twice.
pub fn seal_clear_secrets(conn: &Connection, cipher: &SecretCipher) -> StoreResult<usize> {
    let mut statement = conn
        .prepare(
            "SELECT app_id, id, secret, retiring_secrets FROM endpoints
             WHERE secret NOT LIKE 'v1.%' OR retiring_secrets LIKE '%\"secret\":\"wh%'",
        )
        .map_err(db_error)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    let mut sealed = 0;
    for (app_id, id, secret, retiring) in rows {
        let Some((new_secret, new_retiring)) =
            records::seal_if_clear(cipher, &app_id, &id, &secret, &retiring)
                .map_err(|e| StoreError::Database(format!("endpoint {id}: {e}")))?
        else {
            continue;
        };
        sealed += conn
            .execute(
                "UPDATE endpoints SET secret = ?1, retiring_secrets = ?2
                 WHERE app_id = ?3 AND id = ?4 AND secret = ?5",
                params![new_secret, new_retiring, app_id, id, secret],
            )
            .map_err(db_error)?;
    }
    Ok(sealed)
}
