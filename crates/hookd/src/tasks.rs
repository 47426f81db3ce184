//! Background tasks: jobs recorded in the database (`recover` for now) that the workers run in
//! batches, so they survive restarts and any worker may carry on a task another began.
//!
//! The API only records a task ([`Store::create_task`](crate::store::Store::create_task)). On
//! every worker, the runner looks for running tasks each interval and advances them one batch
//! at a time through [`Store::run_task_batch`](crate::store::Store::run_task_batch): each batch
//! makes up to `batch_size` failed deliveries due and records how far it got in the same
//! transaction, then wakes the local dispatcher. A task waits while its previous batch is still
//! being attempted, so recovering a million deliveries to one endpoint never puts them all
//! ahead of other endpoints' fresh work.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::delivery::DispatchHandle;
use crate::store::{SharedStore, TaskStatus};

/// The running task runner; [`TaskRunner::shutdown`] stops it.
pub struct TaskRunner {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TaskRunner {
    /// Looks for work now, then every `interval`.
    pub fn start(
        store: SharedStore,
        dispatch: Option<DispatchHandle>,
        interval: Duration,
        batch_size: usize,
    ) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(store, dispatch, interval, batch_size, stop.clone()));
        Self { stop, task }
    }

    /// Stops between batches: a batch is one transaction, so nothing is left half done.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            warn!(error = %err, "the background task runner failed");
        }
    }
}

async fn run(
    store: SharedStore,
    dispatch: Option<DispatchHandle>,
    interval: Duration,
    batch_size: usize,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => advance(&store, dispatch.as_ref(), batch_size, &stop).await,
        }
    }
}

/// Runs batches while some task can move.
async fn advance(
    store: &SharedStore,
    dispatch: Option<&DispatchHandle>,
    batch_size: usize,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        match store
            .run_task_batch(batch_size, crate::domain::time::now_millis())
            .await
        {
            Ok(Some(batch)) => {
                if batch.made_due > 0 {
                    if let Some(dispatch) = dispatch {
                        dispatch.wake();
                    }
                }
                if batch.status != TaskStatus::Running {
                    info!(
                        task_id = %batch.task_id,
                        status = batch.status.as_str(),
                        "a background task ended"
                    );
                }
            }
            Ok(None) => break,
            Err(err) => {
                warn!(error = %err, "running a background task batch failed; retrying at the next interval");
                break;
            }
        }
    }
}
