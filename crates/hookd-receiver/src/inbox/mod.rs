//! The inbox: each `webhook-id` recorded once, in the consumer's own database.
//!
//! A sender delivers at least once: a retry after a timeout, a resend, or a crash between the
//! receiver's commit and its answer all bring the same message again, with the same
//! `webhook-id`, possibly a day later. The inbox is one table, `webhook_inbox(id primary key,
//! received_at)`, and one rule: **record the id in the same transaction as the event's
//! effect.** Then the two commit together or not at all:
//!
//! - a first delivery inserts the id and applies the effect;
//! - a duplicate finds the id ([`sqlite::record_once`] returns `false`) and the handler answers
//!   2xx without doing anything;
//! - if the effect fails, the transaction rolls back, the id is not recorded, and the sender's
//!   retry gets a fresh chance.
//!
//! Two deliveries of one id at the same moment are serialised by the primary key: the second
//! insert waits for the first transaction and then finds the id.
//!
//! Call `record_once` as the transaction's first statement. On SQLite that makes the
//! transaction a writer from its start, so concurrent handlers queue on the write lock (with the
//! pool's busy timeout) instead of failing to upgrade a read.
//!
//! Entries only need to outlive the sender's retries: [`DEFAULT_HORIZON`] is three days, for
//! hookd's schedule of about 33 hours plus margin for manual resends. Prune older entries
//! regularly with `prune`.
//!
//! Both backends store `received_at` as seconds since the Unix epoch, taken from this process's
//! clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "inbox-postgres")]
pub mod postgres;
#[cfg(feature = "inbox-sqlite")]
pub mod sqlite;

/// How long an id is kept by default: longer than hookd retries (about 33 hours with the
/// default schedule), so a duplicate arriving at any point of the retry horizon is still found.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(3 * 24 * 60 * 60);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `received_at` before which entries are pruned.
fn cutoff(horizon: Duration) -> i64 {
    let horizon = i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX);
    unix_now().saturating_sub(horizon)
}
