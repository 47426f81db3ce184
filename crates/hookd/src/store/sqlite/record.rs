//! Recording attempt results under their leases, in one transaction with what they cause:
//! the endpoints' failure clocks ([`crate::store::health`]), a recovered endpoint's catch-up
//! ([`crate::store::catchup`]) and the release of the next delivery of each finished ordering
//! key ([`crate::store::outcome`]).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use super::{catalog, catchup, outbox};
use crate::store::outbox::{recorded_events, OutboxSwitch};
use crate::store::outcome::{self, KeyOf};
use crate::store::status::{HELD, PENDING, SENDING};
use crate::store::{activity, health};
use crate::store::{AttemptResult, DisabledEndpoint, HealthPolicy, Recorded, StoreResult};

/// Applies results whose lease still holds, then moves the failure clocks of their endpoints
/// (see [`health`]) and writes the operational events of the batch, all in the caller's
/// transaction.
pub fn record_attempts(
    conn: &Connection,
    results: &[AttemptResult],
    policy: &HealthPolicy,
    now: i64,
    operational: &OutboxSwitch,
) -> StoreResult<Recorded> {
    let mut update = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4,
             lease_owner = NULL, lease_token = NULL, updated_at = ?5
             WHERE id = ?1 AND lease_token = ?2 AND status = {SENDING}
             RETURNING endpoint_id, ordering_key"
        ))
        .map_err(db_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
             response_status_code, response, response_duration_ms, trigger_type, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db_error)?;
    let mut applied = Vec::with_capacity(results.len());
    let mut finished_keys: Vec<(&str, String, String)> = Vec::new();
    for result in results {
        let (status, next_attempt_at) = outcome::after_attempt(result.next);
        let updated: Option<(String, Option<String>)> = update
            .query_row(
                params![
                    result.delivery_id,
                    result.lease_token,
                    status.code(),
                    next_attempt_at,
                    now
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(db_error)?;
        applied.push(updated.is_some());
        let Some((endpoint_id, ordering_key)) = updated else {
            continue; // The lease was lost: another claim owns this delivery now.
        };
        if let Some(key) = ordering_key.filter(|_| outcome::finishes(result.next)) {
            finished_keys.push((&result.app_id, key, endpoint_id));
        }
        let a = &result.attempt;
        insert
            .execute(params![
                a.id,
                result.delivery_id,
                result.app_id,
                a.msg_id,
                a.endpoint_id,
                a.url,
                a.success,
                a.response_status_code,
                a.response,
                a.response_duration_ms,
                a.trigger_type as i64,
                a.created_at
            ])
            .map_err(db_error)?;
    }
    // The next message of each finished key may go.
    let mut released = 0;
    let keys =
        outcome::keys_to_release(
            finished_keys
                .iter()
                .map(|(app_id, key, endpoint_id)| KeyOf {
                    app_id,
                    ordering_key: key,
                    endpoint_id,
                }),
        );
    for key in keys {
        released += release_next(conn, key.endpoint_id, key.ordering_key, now)?;
    }
    let applied_results = results
        .iter()
        .zip(&applied)
        .filter_map(|(result, applied)| applied.then_some(result));
    let applied_results: Vec<&AttemptResult> = applied_results.collect();
    count_hourly(conn, applied_results.iter().copied())?;
    let (disabled, caught_up) = judge_endpoints(conn, &applied_results, now, policy)?;
    let events = operational.rows(recorded_events(results, &applied, &disabled));
    let operational = outbox::insert(conn, &events, now)?;
    Ok(Recorded {
        applied,
        disabled,
        released,
        caught_up,
        operational,
    })
}

/// Adds the applied results to their endpoints' hourly counts ([`activity`]).
fn count_hourly<'a>(
    conn: &Connection,
    applied: impl Iterator<Item = &'a AttemptResult>,
) -> StoreResult<()> {
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO endpoint_activity (endpoint_id, app_id, hour, succeeded, failed, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (endpoint_id, hour) DO UPDATE
             SET succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed,
                 duration_ms = duration_ms + excluded.duration_ms",
        )
        .map_err(db_error)?;
    for count in activity::hourly_counts(applied) {
        upsert
            .execute(params![
                count.endpoint_id,
                count.app_id,
                count.hour,
                count.succeeded,
                count.failed,
                count.duration_ms
            ])
            .map_err(db_error)?;
    }
    Ok(())
}

/// Moves the failure clock of each endpoint with results in the batch; disables (and cancels
/// the pending deliveries of) those the rules say to; starts or continues their
/// catch-up ([`catchup`]). Endpoint rows are written only when their clock or state changes,
/// so a batch of successes to healthy endpoints writes none. Answers the endpoints disabled and
/// how many waiting deliveries the catch-up made due.
fn judge_endpoints(
    conn: &Connection,
    applied: &[&AttemptResult],
    now: i64,
    policy: &HealthPolicy,
) -> StoreResult<(Vec<DisabledEndpoint>, usize)> {
    let mut write = conn
        .prepare_cached(
            "UPDATE endpoints SET first_failure_at = ?2, disabled = ?3,
             updated_at = CASE WHEN ?3 THEN ?4 ELSE updated_at END WHERE id = ?1",
        )
        .map_err(db_error)?;
    let verdicts = health::verdicts(applied.iter().copied());
    // An endpoint deleted or disabled meanwhile has no clock to read.
    let states = catchup::read_states(conn, &verdicts)?;
    let clocks: HashMap<String, Option<i64>> = states
        .iter()
        .map(|(id, state)| (id.clone(), state.failing_since))
        .collect();
    let judged = health::judge_batch(&verdicts, &clocks, now, policy);
    for change in &judged.changes {
        write
            .execute(params![
                change.endpoint_id,
                change.failing_since,
                change.disable,
                now
            ])
            .map_err(db_error)?;
        if change.disable {
            catalog::cancel_pending(conn, change.endpoint_id)?;
        }
    }
    let caught_up = catchup::catch_up(conn, &verdicts, &states, applied, now)?;
    Ok((judged.disabled, caught_up))
}

/// Makes the earliest held delivery of a key due, once the one before it has finished.
fn release_next(conn: &Connection, endpoint_id: &str, key: &str, now: i64) -> StoreResult<usize> {
    conn.prepare_cached(&format!(
        "UPDATE deliveries SET status = {PENDING}, next_attempt_at = ?3, updated_at = ?3
         WHERE rowid = (SELECT rowid FROM deliveries
                        WHERE endpoint_id = ?1 AND ordering_key = ?2 AND status = {HELD}
                        ORDER BY rowid LIMIT 1)
           AND NOT EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = ?1
                           AND ordering_key = ?2 AND status IN ({PENDING}, {SENDING}))"
    ))
    .and_then(|mut s| s.execute(params![endpoint_id, key, now]))
    .map_err(db_error)
}
