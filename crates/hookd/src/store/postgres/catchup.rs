//! Catch-up after an outage ([`crate::store::catchup`]): releasing a recovered endpoint's
//! waiting deliveries in bounded batches, in the transaction that records the results. The
//! recorder has locked the row of every endpoint this touches (see `record::judge_endpoints`),
//! so two nodes never release for one endpoint at once.

use std::collections::HashMap;

use super::claim;
use super::connection::db_error;
use crate::store::catchup::{self, EndpointState, Step, Throttle, RELEASE_BATCH};
use crate::store::health::EndpointVerdict;
use crate::store::status::PENDING;
use crate::store::{AttemptResult, StoreResult};

/// Starts or continues each endpoint's catch-up as its verdict says, and releases the failures
/// of attempts sent before its last catch-up began ([`catchup::sent_while_down`]); answers how
/// many waiting deliveries it made due. `states` holds the endpoints locked by the recorder.
pub async fn catch_up(
    tx: &mut sqlx::PgConnection,
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
            start(tx, verdict.endpoint_id, now).await?;
        }
        let catchup_at = if step == Step::Start {
            Some(now)
        } else {
            state.last_start
        };
        if let Some(catchup_at) = catchup_at {
            let late = catchup::sent_while_down(applied, verdict.endpoint_id, catchup_at);
            released += make_due(tx, &late, now).await?;
        }
        if step != Step::Nothing {
            released += release_more(tx, verdict.endpoint_id, now).await?;
        }
    }
    Ok(released)
}

/// Makes the given deliveries due now, if they are waiting for a retry (this transaction
/// already holds their rows: it recorded their results).
async fn make_due(
    tx: &mut sqlx::PgConnection,
    delivery_ids: &[&str],
    now: i64,
) -> StoreResult<usize> {
    if delivery_ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(&format!(
        "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2
         WHERE id = ANY($1) AND status = {PENDING} AND next_attempt_at > $2"
    ))
    .bind(delivery_ids)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(0))
}

/// Starts a catch-up at `now`: deliveries last written before then are released.
async fn start(tx: &mut sqlx::PgConnection, endpoint_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE endpoints SET catchup_at = $2, catchup_cursor = $2 WHERE id = $1")
        .bind(endpoint_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Moves the cursor of a catch-up; `None` ends it (its start is kept, see
/// [`catchup::RESTART_AFTER_MS`]).
async fn move_cursor(
    tx: &mut sqlx::PgConnection,
    endpoint_id: &str,
    cursor: Option<i64>,
) -> StoreResult<()> {
    sqlx::query("UPDATE endpoints SET catchup_cursor = $2 WHERE id = $1")
        .bind(endpoint_id)
        .bind(cursor)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Makes due the next waiting deliveries of a catching-up endpoint, as many as
/// [`catchup::release_size`] allows, oldest retry time first from the cursor on; moves the
/// cursor, or ends the catch-up when none is left. Rows another transaction holds (a claim
/// taking an expired lease) are skipped rather than waited for: their own schedule still holds.
async fn release_more(
    tx: &mut sqlx::PgConnection,
    endpoint_id: &str,
    now: i64,
) -> StoreResult<usize> {
    let (catchup_at, cursor, rate, tat): (i64, i64, Option<i64>, i64) = sqlx::query_as(
        "SELECT catchup_at, catchup_cursor, throttle_rate, throttle_tat FROM endpoints
         WHERE id = $1",
    )
    .bind(endpoint_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let throttle = rate
        .and_then(|rate| u32::try_from(rate).ok())
        .map(|rate| Throttle { rate, tat });
    let asked = catchup::release_size(due_now(tx, endpoint_id, now).await?, throttle, now);
    if asked == 0 {
        return Ok(0);
    }
    let (released, last_due): (i64, Option<i64>) = sqlx::query_as(&format!(
        "WITH waiting AS (
            SELECT id, next_attempt_at FROM deliveries
            WHERE {} AND status = {PENDING} AND updated_at < $3
            ORDER BY endpoint_id, next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
         ), released AS (
            UPDATE deliveries d SET next_attempt_at = $5, updated_at = $5
            FROM waiting w WHERE d.id = w.id
            RETURNING w.next_attempt_at
         )
         SELECT COUNT(*), MAX(next_attempt_at) FROM released",
        claim::endpoint_waiting_from("$1", "$2")
    ))
    .bind(endpoint_id)
    .bind(cursor.max(now + 1))
    .bind(catchup_at)
    .bind(i64::try_from(asked).unwrap_or(i64::MAX))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let released = usize::try_from(released).unwrap_or(0);
    move_cursor(
        tx,
        endpoint_id,
        catchup::resume_after(asked, released, last_due),
    )
    .await?;
    Ok(released)
}

/// How many of the endpoint's deliveries are due at `now`, counted up to [`RELEASE_BATCH`]
/// from the endpoint's due index alone.
async fn due_now(tx: &mut sqlx::PgConnection, endpoint_id: &str, now: i64) -> StoreResult<usize> {
    let due: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE {} LIMIT $3) due",
        claim::endpoint_due_up_to("$1", "$2")
    ))
    .bind(endpoint_id)
    .bind(now)
    .bind(i64::try_from(RELEASE_BATCH).unwrap_or(i64::MAX))
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    Ok(usize::try_from(due).unwrap_or(0))
}
