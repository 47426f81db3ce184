//! Queries for idempotency keys: claim, save the answer, release, prune.

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use crate::store::{
    IdempotencyClaim, IdempotencyKey, IdempotencyState, StoreResult, StoredResponse,
};

/// Takes the key when it is free, expired, or held by a request whose lock lapsed; otherwise
/// reports what holds it. One writer job, so concurrent claims are serialised.
pub fn claim(conn: &Connection, claim: &IdempotencyClaim) -> StoreResult<IdempotencyState> {
    let taken = conn
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, locked_until, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                 status = NULL, content_type = NULL, body = NULL,
                 locked_until = excluded.locked_until, expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= ?6
                OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until <= ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                claim.key.scope,
                claim.key.key,
                claim.fingerprint,
                claim.locked_until,
                claim.expires_at,
                claim.now
            ])
        })
        .map_err(db_error)?;
    if taken > 0 {
        return Ok(IdempotencyState::Acquired);
    }
    let held = conn
        .prepare_cached(
            "SELECT fingerprint, status, content_type, body FROM idempotency_keys
             WHERE scope = ?1 AND key = ?2",
        )
        .and_then(|mut s| {
            s.query_row([&claim.key.scope, &claim.key.key], |row| {
                let fingerprint: String = row.get(0)?;
                let status: Option<u16> = row.get(1)?;
                Ok(match status {
                    None => IdempotencyState::InFlight { fingerprint },
                    Some(status) => IdempotencyState::Finished {
                        fingerprint,
                        response: StoredResponse {
                            status,
                            content_type: row.get(2)?,
                            body: row.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                        },
                    },
                })
            })
            .optional()
        })
        .map_err(db_error)?;
    // The insert found a row it could not take, in the same transaction: it is still there.
    Ok(held.unwrap_or(IdempotencyState::InFlight {
        fingerprint: String::new(),
    }))
}

pub fn save(conn: &Connection, key: &IdempotencyKey, response: &StoredResponse) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE idempotency_keys SET status = ?3, content_type = ?4, body = ?5,
         locked_until = NULL WHERE scope = ?1 AND key = ?2 AND status IS NULL",
    )
    .and_then(|mut s| {
        s.execute(params![
            key.scope,
            key.key,
            response.status,
            response.content_type,
            response.body
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn release(conn: &Connection, key: &IdempotencyKey) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND status IS NULL",
    )
    .and_then(|mut s| s.execute([&key.scope, &key.key]))
    .map_err(db_error)?;
    Ok(())
}

/// Deletes up to `limit` records past their expiry.
pub fn prune(conn: &Connection, now: i64, limit: i64) -> StoreResult<usize> {
    conn.prepare_cached(
        "DELETE FROM idempotency_keys WHERE rowid IN
         (SELECT rowid FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
    )
    .and_then(|mut s| s.execute(params![now, limit]))
    .map_err(db_error)
}
