//! The reference merchant: a membership app that keeps its payment statuses right from hookd's
//! webhooks, even when they arrive twice, late, or out of order.
//!
//! `POST /webhooks` does, in order:
//!
//! 1. **Verify** (the [`Webhook`] extractor): a bad signature or a stale timestamp gets 401, a
//!    malformed request 400, before anything is read from the body.
//! 2. **Understand** the event ([`payments::Event::payment_update`]); event types the app does
//!    not handle are acknowledged with 204 and nothing else.
//! 3. **In one transaction**: record the `webhook-id` in the inbox (a duplicate stops here),
//!    load the payment, [`decide`](payments::decide) whether the update is newer than what is
//!    stored, store it and run its [effect](payments::effect) (activate or end the membership,
//!    raise an alert). Commit.
//! 4. **Answer 204** at once. Anything slow (e-mails, calls to other services) belongs in a job
//!    fed by rows written in that transaction (the `alerts` table is one), not in the request:
//!    hookd gives each attempt 15 s and counts a slow answer as a failure.
//!
//! `GET /payments/{id}` shows what the app knows of a payment.

pub mod db;
pub mod payments;

use std::str::FromStr as _;
use std::time::Duration;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookd_receiver::inbox::sqlite as inbox;
use hookd_receiver::{Verifier, Webhook};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::payments::{Decision, Effect, Event, EventError, PaymentUpdate};

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    pool: SqlitePool,
    verifier: Verifier,
}

/// Lets the [`Webhook`] extractor find the verifier.
impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The app's routes over a database opened by [`connect`].
pub fn app(pool: SqlitePool, verifier: Verifier) -> Router {
    Router::new()
        .route("/webhooks", post(receive))
        .route("/payments/{id}", get(show_payment))
        .with_state(AppState { pool, verifier })
}

/// Opens (creating if needed) the SQLite database at `database_url` (`sqlite://PATH`) and its
/// tables, the inbox's included.
pub async fn connect(database_url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // The 204 tells hookd the event is handled: it must be on disk by then.
        .synchronous(SqliteSynchronous::Full)
        // Concurrent deliveries queue for SQLite's single writer instead of failing.
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(db::SCHEMA).execute(&pool).await?;
    inbox::create_table(&pool).await?;
    Ok(pool)
}

/// Removes inbox entries past the retry horizon every `period`, forever; run it beside the
/// server (errors are logged and retried next time).
pub async fn prune_inbox_forever(pool: SqlitePool, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        match inbox::prune(&pool, hookd_receiver::inbox::DEFAULT_HORIZON).await {
            Ok(pruned) => tracing::debug!(pruned, "inbox pruned"),
            Err(error) => tracing::error!(%error, "inbox pruning failed"),
        }
    }
}

/// What handling one delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its `webhook-id` was already handled: nothing done.
    Duplicate,
    /// Handled: what [`payments::decide`] said, and the effect run if it applied.
    Handled(Decision, Effect),
}

async fn receive(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    webhook: Webhook<Event>,
) -> Result<StatusCode, AppError> {
    // `hookd certify` (or "check my endpoint") checking this endpoint: the request is signed,
    // so it truly comes from hookd, but it is not an event. Acknowledge it and change nothing;
    // a header outside the signature can make the sender's request ignored, never applied.
    if headers.get("hookd-certify").is_some_and(|v| v == "1") {
        tracing::info!(webhook_id = %webhook.id, "certification request acknowledged, nothing applied");
        return Ok(StatusCode::NO_CONTENT);
    }
    let Some(update) = webhook.payload.payment_update()? else {
        tracing::info!(
            webhook_id = %webhook.id,
            event = %webhook.payload.event,
            "event type not handled"
        );
        return Ok(StatusCode::NO_CONTENT);
    };
    let outcome = handle(&state.pool, &webhook.id, &update).await?;
    // Logged after the commit, so that a log line never claims what a rollback undid.
    tracing::info!(
        webhook_id = %webhook.id,
        payment_id = %update.payment_id,
        status = update.status.as_str(),
        ?outcome,
        "payment event handled"
    );
    match outcome {
        Outcome::Handled(Decision::Apply, Effect::RaiseAlert) => tracing::warn!(
            payment_id = %update.payment_id,
            order_id = %update.order_id,
            "payment failed: alert raised"
        ),
        Outcome::Handled(Decision::Refused, _) => tracing::warn!(
            payment_id = %update.payment_id,
            status = update.status.as_str(),
            "impossible status change refused"
        ),
        Outcome::Handled(..) | Outcome::Duplicate => {}
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Applies one payment update, exactly once per `webhook_id` (see the crate documentation).
pub async fn handle(
    pool: &SqlitePool,
    webhook_id: &str,
    update: &PaymentUpdate,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // First statement of the transaction: see hookd_receiver::inbox.
    if !inbox::record_once(&mut tx, webhook_id).await? {
        return Ok(Outcome::Duplicate);
    }
    let known = db::load_payment(&mut tx, &update.payment_id).await?;
    let decision = payments::decide(known, update);
    let mut effect = Effect::None;
    if decision == Decision::Apply {
        db::save_payment(&mut tx, update).await?;
        effect = payments::effect(known.map(|k| k.status), update.status);
        match effect {
            Effect::ActivateMembership => {
                db::set_membership(&mut tx, &update.order_id, true).await?
            }
            Effect::EndMembership => db::set_membership(&mut tx, &update.order_id, false).await?,
            Effect::RaiseAlert => {
                let message = format!(
                    "payment {} for order {} failed",
                    update.payment_id, update.order_id
                );
                db::insert_alert(&mut tx, &update.payment_id, webhook_id, &message).await?;
            }
            Effect::None => {}
        }
    }
    // Ignored updates are committed too: the inbox row says this delivery was handled.
    tx.commit().await?;
    Ok(Outcome::Handled(decision, effect))
}

async fn show_payment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(match db::payment_view(&state.pool, &id).await? {
        Some(view) => Json(view).into_response(),
        None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
    })
}

/// The app's error policy: an authentic event the app cannot use gets 400 with the reason
/// (hookd records it with the attempt); a database failure is logged once here and gets a bare
/// 500, so hookd retries later.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Event(error) => {
                tracing::warn!(%error, "payment event refused");
                (StatusCode::BAD_REQUEST, error.to_string()).into_response()
            }
            AppError::Database(error) => {
                tracing::error!(%error, "database failure");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
