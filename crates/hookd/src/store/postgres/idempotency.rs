//! Queries for idempotency keys: claim, save the answer, release, prune.

use sqlx::postgres::PgPool;
use sqlx::Row;

use super::connection::db_error;
use crate::store::{
    IdempotencyClaim, IdempotencyKey, IdempotencyState, StoreResult, StoredResponse,
};

/// Takes the key when it is free, expired, or held by a request whose lock lapsed; otherwise
/// reports what holds it. Concurrent claims of one key serialise on its primary key: the
/// second `INSERT … ON CONFLICT` waits for the first to commit, then finds the key held.
pub async fn claim(pool: &PgPool, claim: &IdempotencyClaim) -> StoreResult<IdempotencyState> {
    // A holder may release the key between the insert and the read; then try again.
    for _ in 0..3 {
        let taken = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, locked_until, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                 status = NULL, content_type = NULL, body = NULL,
                 locked_until = excluded.locked_until, expires_at = excluded.expires_at
             WHERE idempotency_keys.expires_at <= $6
                OR (idempotency_keys.status IS NULL AND idempotency_keys.locked_until <= $6)
             RETURNING TRUE",
        )
        .bind(&claim.key.scope)
        .bind(&claim.key.key)
        .bind(&claim.fingerprint)
        .bind(claim.locked_until)
        .bind(claim.expires_at)
        .bind(claim.now)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
        if taken.is_some() {
            return Ok(IdempotencyState::Acquired);
        }
        let held = sqlx::query(
            "SELECT fingerprint, status, content_type, body FROM idempotency_keys
             WHERE scope = $1 AND key = $2",
        )
        .bind(&claim.key.scope)
        .bind(&claim.key.key)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
        let Some(row) = held else { continue };
        let fingerprint: String = row.try_get("fingerprint").map_err(db_error)?;
        let status: Option<i16> = row.try_get("status").map_err(db_error)?;
        return Ok(match status {
            None => IdempotencyState::InFlight { fingerprint },
            Some(status) => IdempotencyState::Finished {
                fingerprint,
                response: StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    content_type: row.try_get("content_type").map_err(db_error)?,
                    body: row
                        .try_get::<Option<Vec<u8>>, _>("body")
                        .map_err(db_error)?
                        .unwrap_or_default(),
                },
            },
        });
    }
    // Claimed and released three times over in a few milliseconds: treat it as busy.
    Ok(IdempotencyState::InFlight {
        fingerprint: claim.fingerprint.clone(),
    })
}

pub async fn save(
    pool: &PgPool,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5,
         locked_until = NULL WHERE scope = $1 AND key = $2 AND status IS NULL",
    )
    .bind(&key.scope)
    .bind(&key.key)
    .bind(i16::try_from(response.status).unwrap_or(500))
    .bind(&response.content_type)
    .bind(&response.body)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn release(pool: &PgPool, key: &IdempotencyKey) -> StoreResult<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
        .bind(&key.scope)
        .bind(&key.key)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes up to `limit` records past their expiry; rows another node is deleting are skipped.
pub async fn prune(pool: &PgPool, now: i64, limit: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "WITH old AS (
            SELECT scope, key FROM idempotency_keys WHERE expires_at <= $1
            LIMIT $2 FOR UPDATE SKIP LOCKED
         )
         DELETE FROM idempotency_keys k USING old WHERE k.scope = old.scope AND k.key = old.key",
    )
    .bind(now)
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}
