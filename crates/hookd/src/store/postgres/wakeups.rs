//! Cross-node wake-ups: `NOTIFY hookd_due` when deliveries become due without a local lease,
//! and a `LISTEN hookd_due` connection that turns notifications into wake-ups of the engine.
//!
//! These are hints only. A notification lost (a node restarting, PostgreSQL restarting, a
//! full queue) costs at most one poll interval, because every node also polls.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The channel hookd's nodes notify and listen on.
pub const CHANNEL: &str = "hookd_due";

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Sends `NOTIFY hookd_due` after commits that made work due, coalescing bursts.
///
/// The notification is sent by a task, after the ingest transaction has committed, rather
/// than inside it: PostgreSQL serializes the commits of all notifying transactions on one lock,
/// which would cap ingest; and while one notification is in flight, any number of further
/// requests collapse into the next one.
pub struct Notifier {
    pending: Arc<Notify>,
}

impl Notifier {
    /// Starts the notifying task; it ends when `stop` is cancelled.
    pub fn start(pool: PgPool, stop: CancellationToken) -> Self {
        let pending = Arc::new(Notify::new());
        let waiting = Arc::clone(&pending);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = waiting.notified() => {}
                }
                if let Err(err) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(CHANNEL)
                    .execute(&pool)
                    .await
                {
                    // Other nodes find the work on their next poll.
                    debug!(error = %err, "sending a wake-up notification failed");
                }
            }
        });
        Self { pending }
    }

    /// Asks for one notification soon.
    pub fn notify(&self) {
        self.pending.notify_one();
    }
}

/// Starts a task that listens on [`CHANNEL`] and sends `()` for each notification (and after
/// each reconnection, since notifications may have been missed meanwhile). It reconnects with
/// backoff when PostgreSQL goes away, and ends when the receiver is dropped or `stop` is
/// cancelled.
pub fn listen(pool: PgPool, stop: CancellationToken) -> mpsc::Receiver<()> {
    let (wake, wakeups) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut backoff = BACKOFF_START;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.closed() => break,
                outcome = listen_until_lost(&pool, &wake) => {
                    match outcome {
                        Ok(()) => backoff = BACKOFF_START,
                        Err(err) => {
                            warn!(error = %err, retry_in = ?backoff, "listening for wake-ups failed; polling continues");
                            tokio::select! {
                                () = stop.cancelled() => break,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
            }
        }
    });
    wakeups
}

/// Listens on one connection until it is lost (`Ok`) or cannot be (re)established (`Err`).
async fn listen_until_lost(pool: &PgPool, wake: &mpsc::Sender<()>) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // Anything made due while we were not listening is found by this first wake-up.
    let _ = wake.try_send(());
    // `try_recv` answers `None` when the connection drops, instead of reconnecting silently.
    while let Some(_notification) = listener.try_recv().await? {
        // A full channel already holds a wake-up: that one covers this notification too.
        let _ = wake.try_send(());
    }
    debug!("the wake-up connection was lost; reconnecting");
    Ok(())
}
