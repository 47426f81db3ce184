//! Retention: a background task that deletes attempts, and messages whose deliveries are
//! finished, once they are older than the retention period, and what outlived its own deadline
//! (see [`Store::prune_expired`](crate::store::Store::prune_expired)), so nothing grows without
//! bound.
//!
//! It works through [`Store::prune`](crate::store::Store::prune) on every backend, in small
//! batches so no delete holds locks for long. Several nodes may prune at once: PostgreSQL skips
//! rows another node is deleting. Time partitioning of the attempt table would make old data
//! cheaper still to drop, but only on PostgreSQL; batched deletes keep one behaviour for both
//! backends and are enough while a day's attempts fit comfortably in the database.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::time::now_millis;
use crate::store::SharedStore;

/// Rows deleted per statement.
const PRUNE_BATCH: usize = 1000;

/// The running pruner; [`Pruner::shutdown`] stops it.
pub struct Pruner {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Pruner {
    /// Prunes now, then every `interval`.
    pub fn start(store: SharedStore, retention: Duration, interval: Duration) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(store, retention, interval, stop.clone()));
        Self { stop, task }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            warn!(error = %err, "the pruning task failed");
        }
    }
}

async fn run(store: SharedStore, retention: Duration, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => prune_all(&store, retention, &stop).await,
        }
    }
}

/// Deletes batch after batch until nothing is left past retention, then what has expired.
async fn prune_all(store: &SharedStore, retention: Duration, stop: &CancellationToken) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let now = now_millis();
    let before = now.saturating_sub(retention_ms);
    let old = in_batches(stop, "old attempts and messages", || {
        store.prune(before, PRUNE_BATCH)
    })
    .await;
    if old > 0 {
        info!(rows = old, "pruned attempts and messages past retention");
    }
    let expired = in_batches(stop, "expired records", || {
        store.prune_expired(now, PRUNE_BATCH)
    })
    .await;
    if expired > 0 {
        info!(rows = expired, "pruned expired records");
    }
}

/// Runs `batch` until it changes fewer than [`PRUNE_BATCH`] rows; answers the rows changed.
async fn in_batches<F>(stop: &CancellationToken, what: &str, mut batch: impl FnMut() -> F) -> u64
where
    F: std::future::Future<Output = crate::store::StoreResult<u64>>,
{
    let mut total = 0;
    while !stop.is_cancelled() {
        match batch().await {
            Ok(changed) => {
                total += changed;
                if changed < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Err(err) => {
                warn!(error = %err, "pruning {what} failed; retrying at the next interval");
                break;
            }
        }
    }
    total
}
