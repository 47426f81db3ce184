//! Recording attempt results under their leases, in one transaction with what they cause:
//! the endpoints' failure clocks ([`crate::store::health`]), a recovered endpoint's catch-up
//! ([`crate::store::catchup`]) and the release of the next delivery of each finished ordering
//! key ([`crate::store::outcome`]).

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgPool;

use super::catalog::cancel_pending;
use super::connection::db_error;
use super::{catchup, outbox};
use crate::store::catchup::EndpointState;
use crate::store::outbox::{recorded_events, OutboxSwitch};
use crate::store::outcome::{self, KeyOf};
use crate::store::status::{CANCELED, FAILED, HELD, PENDING, SENDING, SUCCESS};
use crate::store::{activity, health};
use crate::store::{Attempt, AttemptResult, DisabledEndpoint, HealthPolicy, Recorded, StoreResult};

/// Applies results whose lease still holds and logs an attempt for each that did (one
/// statement), then moves the failure clocks of their endpoints (see [`health`]) and writes the
/// batch's operational events, in one transaction.
pub async fn record_attempts(
    pool: &PgPool,
    results: &[AttemptResult],
    policy: &HealthPolicy,
    now: i64,
    operational: &OutboxSwitch,
) -> StoreResult<Recorded> {
    // Rows are locked in id order, so two nodes recording overlapping batches (possible only
    // after a lease expired) do not deadlock.
    let mut sorted: Vec<&AttemptResult> = results.iter().collect();
    sorted.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    let n = sorted.len();
    let mut ids = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut next_at: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut attempt_ids = Vec::with_capacity(n);
    let mut app_ids = Vec::with_capacity(n);
    let mut msg_ids = Vec::with_capacity(n);
    let mut endpoint_ids = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut successes = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut responses = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut triggers = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    for result in sorted {
        let (status, next) = outcome::after_attempt(result.next);
        let a: &Attempt = &result.attempt;
        ids.push(result.delivery_id.as_str());
        tokens.push(result.lease_token.as_str());
        statuses.push(status as i16);
        next_at.push(next);
        attempt_ids.push(a.id.as_str());
        app_ids.push(result.app_id.as_str());
        msg_ids.push(a.msg_id.as_str());
        endpoint_ids.push(a.endpoint_id.as_str());
        urls.push(a.url.as_str());
        successes.push(a.success);
        codes.push(i32::try_from(a.response_status_code).unwrap_or(0));
        responses.push(a.response.as_str());
        durations.push(a.response_duration_ms);
        triggers.push(a.trigger_type as i16);
        created.push(a.created_at);
    }
    let mut tx = pool.begin().await.map_err(db_error)?;
    let applied: Vec<String> = sqlx::query_scalar(&format!(
        "WITH results AS (
            SELECT * FROM UNNEST($1::text[], $2::text[], $3::smallint[], $4::bigint[],
                                 $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                 $10::bool[], $11::int[], $12::text[], $13::bigint[],
                                 $14::smallint[], $15::bigint[])
              AS r(delivery_id, lease_token, status, next_attempt_at, attempt_id, app_id,
                   msg_id, endpoint_id, url, success, code, response, duration, trigger_type,
                   created_at)
         ), applied AS (
            UPDATE deliveries d SET status = r.status, attempts = d.attempts + 1,
                   next_attempt_at = r.next_attempt_at, lease_owner = NULL, lease_token = NULL,
                   updated_at = $16
            FROM results r
            WHERE d.id = r.delivery_id AND d.lease_token = r.lease_token
              AND d.status = {SENDING}
            RETURNING d.id
         )
         INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
                               response_status_code, response, response_duration_ms,
                               trigger_type, created_at)
         SELECT r.attempt_id, r.delivery_id, r.app_id, r.msg_id, r.endpoint_id, r.url,
                r.success, r.code, r.response, r.duration, r.trigger_type, r.created_at
         FROM results r JOIN applied a ON a.id = r.delivery_id
         RETURNING delivery_id"
    ))
    .bind(&ids)
    .bind(&tokens)
    .bind(&statuses)
    .bind(&next_at)
    .bind(&attempt_ids)
    .bind(&app_ids)
    .bind(&msg_ids)
    .bind(&endpoint_ids)
    .bind(&urls)
    .bind(&successes)
    .bind(&codes)
    .bind(&responses)
    .bind(&durations)
    .bind(&triggers)
    .bind(&created)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let applied: HashSet<String> = applied.into_iter().collect();
    let applied: Vec<bool> = results
        .iter()
        .map(|r| applied.contains(r.delivery_id.as_str()))
        .collect();
    let applied_results = results
        .iter()
        .zip(&applied)
        .filter_map(|(result, applied)| applied.then_some(result));
    let applied_results: Vec<&AttemptResult> = applied_results.collect();
    count_hourly(&mut tx, applied_results.iter().copied()).await?;
    let (disabled, caught_up) = judge_endpoints(&mut tx, &applied_results, now, policy).await?;
    // A finished delivery (delivered, exhausted or gone) lets the next one of its key go, in
    // this transaction: a crash after the commit must not leave the key held for ever.
    let finished: Vec<&str> = results
        .iter()
        .zip(&applied)
        .filter(|(r, applied)| **applied && outcome::finishes(r.next))
        .map(|(r, _)| r.delivery_id.as_str())
        .collect();
    let released = if finished.is_empty() {
        0
    } else {
        release_held(&mut tx, &finished, now).await?
    };
    let events = operational.rows(recorded_events(results, &applied, &disabled));
    let operational = outbox::insert(&mut tx, &events, now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Recorded {
        applied,
        disabled,
        released,
        caught_up,
        operational,
    })
}

/// Adds the applied results to their endpoints' hourly counts ([`activity`]), in one
/// statement; rows are locked in (endpoint, hour) order, as [`activity::hourly_counts`] sorts.
async fn count_hourly<'a>(
    tx: &mut sqlx::PgConnection,
    applied: impl Iterator<Item = &'a AttemptResult>,
) -> StoreResult<()> {
    let counts = activity::hourly_counts(applied);
    if counts.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<&str> = counts.iter().map(|c| c.endpoint_id).collect();
    let apps: Vec<&str> = counts.iter().map(|c| c.app_id).collect();
    let hours: Vec<i64> = counts.iter().map(|c| c.hour).collect();
    let succeeded: Vec<i64> = counts.iter().map(|c| c.succeeded).collect();
    let failed: Vec<i64> = counts.iter().map(|c| c.failed).collect();
    let durations: Vec<i64> = counts.iter().map(|c| c.duration_ms).collect();
    sqlx::query(
        "INSERT INTO endpoint_activity (endpoint_id, app_id, hour, succeeded, failed, duration_ms)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                              $6::bigint[])
         ON CONFLICT (endpoint_id, hour) DO UPDATE
         SET succeeded = endpoint_activity.succeeded + excluded.succeeded,
             failed = endpoint_activity.failed + excluded.failed,
             duration_ms = endpoint_activity.duration_ms + excluded.duration_ms",
    )
    .bind(&endpoints)
    .bind(&apps)
    .bind(&hours)
    .bind(&succeeded)
    .bind(&failed)
    .bind(&durations)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Moves the failure clock of each endpoint with results in the batch; disables (and cancels
/// the pending deliveries of) those the rules say to; starts or continues their
/// catch-up ([`crate::store::catchup`]). Only endpoints whose clock or catch-up may change are
/// locked (in id order) and written, so a batch of successes to healthy endpoints writes none.
/// Answers the endpoints disabled and how many waiting deliveries the catch-up made due.
async fn judge_endpoints(
    tx: &mut sqlx::PgConnection,
    applied: &[&AttemptResult],
    now: i64,
    policy: &HealthPolicy,
) -> StoreResult<(Vec<DisabledEndpoint>, usize)> {
    let verdicts = health::verdicts(applied.iter().copied());
    if verdicts.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let ids: Vec<&str> = verdicts.iter().map(|v| v.endpoint_id).collect();
    // A healthy endpoint's row is neither locked nor written: only those with a failure in the
    // batch, whose clock runs, or which are catching up.
    let mut failing: Vec<&str> = applied
        .iter()
        .filter(|r| !r.attempt.success)
        .map(|r| r.attempt.endpoint_id.as_str())
        .collect();
    failing.sort_unstable();
    failing.dedup();
    let states: HashMap<String, EndpointState> =
        sqlx::query_as::<_, (String, Option<i64>, bool, Option<i64>)>(
            "SELECT id, first_failure_at, catchup_cursor IS NOT NULL, catchup_at FROM endpoints
         WHERE id = ANY($1) AND NOT disabled
           AND (first_failure_at IS NOT NULL OR catchup_cursor IS NOT NULL OR id = ANY($2))
         ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .bind(&failing)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|(id, failing_since, catching_up, last_start)| {
            let state = EndpointState {
                failing_since,
                catching_up,
                last_start,
            };
            (id, state)
        })
        .collect();
    let clocks: HashMap<String, Option<i64>> = states
        .iter()
        .map(|(id, state)| (id.clone(), state.failing_since))
        .collect();
    let judged = health::judge_batch(&verdicts, &clocks, now, policy);
    write_clocks(tx, &judged, now).await?;
    let caught_up = catchup::catch_up(tx, &verdicts, &states, applied, now).await?;
    Ok((judged.disabled, caught_up))
}

/// Writes the clocks a batch moved, and cancels the pending deliveries of the endpoints it
/// disabled.
async fn write_clocks(
    tx: &mut sqlx::PgConnection,
    judged: &health::Judged<'_>,
    now: i64,
) -> StoreResult<()> {
    if judged.changes.is_empty() {
        return Ok(());
    }
    let changed_ids: Vec<&str> = judged.changes.iter().map(|c| c.endpoint_id).collect();
    let changed_since: Vec<Option<i64>> = judged.changes.iter().map(|c| c.failing_since).collect();
    let changed_disable: Vec<bool> = judged.changes.iter().map(|c| c.disable).collect();
    sqlx::query(
        "UPDATE endpoints e SET first_failure_at = c.since, disabled = c.disable,
                updated_at = CASE WHEN c.disable THEN $4 ELSE e.updated_at END
         FROM UNNEST($1::text[], $2::bigint[], $3::bool[]) AS c(id, since, disable)
         WHERE e.id = c.id",
    )
    .bind(&changed_ids)
    .bind(&changed_since)
    .bind(&changed_disable)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    if !judged.disabled.is_empty() {
        let gone: Vec<&str> = judged
            .disabled
            .iter()
            .map(|d| d.endpoint_id.as_str())
            .collect();
        cancel_pending(&mut *tx, &gone, now).await?;
    }
    Ok(())
}

/// Makes the earliest held delivery of each finished keyed delivery's key due, under the key's
/// lock (see `ingest::lock_key`), once no earlier delivery of the key is unfinished. Keys are
/// locked in order, so two nodes recording at once cannot deadlock. Answers how many it released.
async fn release_held(
    tx: &mut sqlx::PgConnection,
    finished_ids: &[&str],
    now: i64,
) -> StoreResult<usize> {
    let keyed: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT app_id, ordering_key, endpoint_id FROM deliveries
         WHERE id = ANY($1) AND ordering_key IS NOT NULL
           AND status IN ({SUCCESS}, {FAILED}, {CANCELED})"
    ))
    .bind(finished_ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let keys = outcome::keys_to_release(keyed.iter().map(|(app_id, key, endpoint_id)| KeyOf {
        app_id,
        ordering_key: key,
        endpoint_id,
    }));
    let mut released = 0;
    let mut locked: Option<(&str, &str)> = None;
    for KeyOf {
        app_id,
        ordering_key: key,
        endpoint_id,
    } in keys
    {
        if locked != Some((app_id, key)) {
            super::ingest::lock_key(&mut *tx, app_id, key).await?;
            locked = Some((app_id, key));
        }
        let done = sqlx::query(&format!(
            "UPDATE deliveries SET status = {PENDING}, next_attempt_at = $3, updated_at = $3
             WHERE id = (SELECT id FROM deliveries WHERE endpoint_id = $1
                         AND ordering_key = $2 AND status = {HELD} ORDER BY seq LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = $1
                               AND ordering_key = $2 AND status IN ({PENDING}, {SENDING}))"
        ))
        .bind(endpoint_id)
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        released += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    Ok(released)
}
