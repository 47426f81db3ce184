//! Catch-up after an outage ([`crate::store::catchup`]): releasing a recovered endpoint's
//! waiting deliveries in bounded batches, in the transaction that records the results.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::db_error;
use crate::store::catchup::{self, EndpointState, Step, Throttle, RELEASE_BATCH};
use crate::store::health::EndpointVerdict;
use crate::store::status::PENDING;
use crate::store::{AttemptResult, StoreResult};

/// The state of each endpoint of `verdicts` that is still there and enabled.
pub fn read_states(
    conn: &Connection,
    verdicts: &[EndpointVerdict<'_>],
) -> StoreResult<HashMap<String, EndpointState>> {
    let mut read = conn
        .prepare_cached(
            "SELECT first_failure_at, catchup_cursor IS NOT NULL, catchup_at FROM endpoints
             WHERE id = ?1 AND disabled = 0",
        )
        .map_err(db_error)?;
    let mut states = HashMap::new();
    for verdict in verdicts {
        let state = read
            .query_row([verdict.endpoint_id], |row| {
                Ok(EndpointState {
                    failing_since: row.get(0)?,
                    catching_up: row.get(1)?,
                    last_start: row.get(2)?,
                })
            })
            .optional()
            .map_err(db_error)?;
        if let Some(state) = state {
            states.insert(verdict.endpoint_id.to_string(), state);
        }
    }
    Ok(states)
}

/// Starts or continues each endpoint's catch-up as its verdict says, and releases the failures
/// of attempts sent before its last catch-up began ([`catchup::sent_while_down`]); answers how
/// many waiting deliveries it made due.
pub fn catch_up(
    conn: &Connection,
    verdicts: &[EndpointVerdict<'_>],
    states: &HashMap<String, EndpointState>,
    applied: &[&AttemptResult],
    now: i64,
) -> StoreResult<usize> {
    let mut released = 0;
    for verdict in verdicts {
        let Some(state) = states.get(verdict.endpoint_id) else {
            continue;
        };
        let step = catchup::step(verdict.verdict, state, now);
        if step == Step::Start {
            start(conn, verdict.endpoint_id, now)?;
        }
        let catchup_at = if step == Step::Start {
            Some(now)
        } else {
            state.last_start
        };
        if let Some(catchup_at) = catchup_at {
            let late = catchup::sent_while_down(applied, verdict.endpoint_id, catchup_at);
            released += make_due(conn, &late, now)?;
        }
        if step != Step::Nothing {
            released += release_more(conn, verdict.endpoint_id, now)?;
        }
    }
    Ok(released)
}

/// Makes the given deliveries due now, if they are waiting for a retry.
fn make_due(conn: &Connection, delivery_ids: &[&str], now: i64) -> StoreResult<usize> {
    let mut update = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET next_attempt_at = ?2, updated_at = ?2
             WHERE id = ?1 AND status = {PENDING} AND next_attempt_at > ?2"
        ))
        .map_err(db_error)?;
    let mut released = 0;
    for id in delivery_ids {
        released += update.execute(params![id, now]).map_err(db_error)?;
    }
    Ok(released)
}

/// Starts a catch-up at `now`: deliveries last written before then are released.
fn start(conn: &Connection, endpoint_id: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached("UPDATE endpoints SET catchup_at = ?2, catchup_cursor = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![endpoint_id, now]))
        .map_err(db_error)?;
    Ok(())
}

/// Moves the cursor of a catch-up; `None` ends it (its start is kept, see
/// [`catchup::RESTART_AFTER_MS`]).
fn move_cursor(conn: &Connection, endpoint_id: &str, cursor: Option<i64>) -> StoreResult<()> {
    conn.prepare_cached("UPDATE endpoints SET catchup_cursor = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![endpoint_id, cursor]))
        .map_err(db_error)?;
    Ok(())
}

/// Makes due the next waiting deliveries of a catching-up endpoint, as many as
/// [`catchup::release_size`] allows, oldest retry time first from the cursor on; moves the
/// cursor, or ends the catch-up when none is left.
fn release_more(conn: &Connection, endpoint_id: &str, now: i64) -> StoreResult<usize> {
    let (catchup_at, cursor, rate, tat): (i64, i64, Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT catchup_at, catchup_cursor, throttle_rate, throttle_tat FROM endpoints
             WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([endpoint_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
        })
        .map_err(db_error)?;
    let throttle = rate
        .and_then(|rate| u32::try_from(rate).ok())
        .map(|rate| Throttle { rate, tat });
    let asked = catchup::release_size(due_now(conn, endpoint_id, now)?, throttle, now);
    if asked == 0 {
        return Ok(0);
    }
    let waiting: Vec<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT rowid, next_attempt_at FROM deliveries
             WHERE endpoint_id = ?1 AND next_attempt_at >= ?2 AND status = {PENDING}
               AND updated_at < ?3
             ORDER BY next_attempt_at LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![endpoint_id, cursor.max(now + 1), catchup_at, asked as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_error)?;
    let mut release = conn
        .prepare_cached(
            "UPDATE deliveries SET next_attempt_at = ?2, updated_at = ?2 WHERE rowid = ?1",
        )
        .map_err(db_error)?;
    for (rowid, _) in &waiting {
        release.execute(params![rowid, now]).map_err(db_error)?;
    }
    let last_due = waiting.last().map(|(_, due)| *due);
    move_cursor(
        conn,
        endpoint_id,
        catchup::resume_after(asked, waiting.len(), last_due),
    )?;
    Ok(waiting.len())
}

/// How many of the endpoint's deliveries are due at `now`, counted up to [`RELEASE_BATCH`]
/// from the endpoint's due index alone.
fn due_now(conn: &Connection, endpoint_id: &str, now: i64) -> StoreResult<usize> {
    let due: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
             WHERE endpoint_id = ?1 AND next_attempt_at <= ?2 LIMIT ?3)",
        )
        .and_then(|mut s| {
            s.query_row(params![endpoint_id, now, RELEASE_BATCH as i64], |row| {
                row.get(0)
            })
        })
        .map_err(db_error)?;
    Ok(usize::try_from(due).unwrap_or(0))
}
