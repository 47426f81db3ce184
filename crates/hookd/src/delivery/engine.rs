//! Running the delivery stages and wiring them together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::attempt::{attempt, AttemptContext};
use super::fairness::{Admission, InFlight};
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::domain::EndpointId;
use crate::operational::Emitter;
use crate::store::{
    AttemptResult, ClaimedDelivery, HealthPolicy, Lease, NextStep, Recorded, SharedStore,
};
use crate::telemetry::{self, Traffic};

/// Deliveries claimed per round trip to the store.
const CLAIM_BATCH: usize = 256;
/// Results written per commit.
const RECORD_BATCH: usize = 512;
/// Batches of fresh deliveries ingest may hand over before it leaves them to claiming.
const HANDOVER_QUEUE: usize = 256;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_in_flight: usize,
    /// Most attempts in flight to one endpoint.
    pub endpoint_max_in_flight: usize,
    pub poll_interval: Duration,
    pub lease_duration: Duration,
    /// How long shutdown waits for attempts in flight.
    pub drain_timeout: Duration,
    /// When recorded failures disable an endpoint.
    pub health: HealthPolicy,
    /// Where recorded attempts are counted for the operator dashboard.
    pub traffic: Arc<Traffic>,
}

/// What the API holds to pass fresh deliveries to this process's worker.
#[derive(Clone)]
pub struct DispatchHandle {
    /// Cancelled when the dispatcher or the recorder ended while nobody asked them to.
    failed: CancellationToken,
    owner: String,
    lease_duration: Duration,
    handover: mpsc::Sender<Vec<ClaimedDelivery>>,
    wake: Arc<Notify>,
    in_flight: Arc<InFlight>,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
}

/// A slot in the hand-over queue with the lease to write into the ingest transaction.
pub struct Reservation {
    pub lease: Lease,
    permit: mpsc::OwnedPermit<Vec<ClaimedDelivery>>,
}

impl Reservation {
    /// Gives the deliveries committed under this lease to the worker.
    pub fn hand_over(self, deliveries: Vec<ClaimedDelivery>) {
        if !deliveries.is_empty() {
            self.permit.send(deliveries);
        }
    }
}

impl DispatchHandle {
    /// Reserves room for one message's deliveries, or `None` when the worker is saturated; the
    /// message is then stored unleased and claimed later. (If the request is dropped between
    /// reservation and hand-over, its deliveries wait for the lease to expire: late, not lost.)
    pub fn reserve(&self) -> Option<Reservation> {
        let permit = self.handover.clone().try_reserve_owned().ok()?;
        let now = now_millis();
        Some(Reservation {
            lease: Lease {
                skip_endpoints: self.in_flight.busy(),
                ..Lease::new(
                    self.owner.clone(),
                    new_id(IdPrefix::Delivery),
                    now,
                    now + millis(self.lease_duration),
                )
            },
            permit,
        })
    }

    /// Tells the worker that new deliveries are due.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether the engine can still deliver: false once its dispatcher or recorder died.
    pub fn alive(&self) -> bool {
        !self.failed.is_cancelled()
    }

    /// The id this node leases deliveries under.
    pub fn node_id(&self) -> &str {
        &self.owner
    }

    /// How many attempts this node has in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.slots.available_permits())
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The running engine; [`Engine::shutdown`] stops it cleanly.
pub struct Engine {
    handle: DispatchHandle,
    store: SharedStore,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Starts the dispatcher and the recorder; the recorder wakes the operational publisher
    /// through `operational` when a batch wrote events.
    pub fn start(
        store: SharedStore,
        ctx: AttemptContext,
        config: EngineConfig,
        operational: Emitter,
    ) -> Self {
        let owner = new_id(IdPrefix::Token).replacen("tok_", "node_", 1);
        let (handover_tx, handover_rx) = mpsc::channel(HANDOVER_QUEUE);
        let (results_tx, results_rx) = mpsc::channel(RECORD_BATCH * 4);
        let (hints_tx, hints_rx) = mpsc::channel(1024);
        let wakeups = store.wakeups();
        let wake = Arc::new(Notify::new());
        let in_flight = Arc::new(InFlight::new(config.endpoint_max_in_flight));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let recorder = Recorder {
            store: Arc::clone(&store),
            results: results_rx,
            hints: hints_tx,
            health: config.health,
            operational,
            traffic: Arc::clone(&config.traffic),
        };
        let slots = Arc::new(Semaphore::new(config.max_in_flight));
        let dispatcher = Dispatcher {
            store: Arc::clone(&store),
            ctx: Arc::new(ctx),
            config: config.clone(),
            owner: owner.clone(),
            slots: Arc::clone(&slots),
            handover: handover_rx,
            hints: hints_rx,
            wakeups,
            results: results_tx,
            wake: Arc::clone(&wake),
            starved: Arc::new(AtomicBool::new(false)),
            in_flight: Arc::clone(&in_flight),
            stop: stop.clone(),
            attempts: JoinSet::new(),
        };
        let failed = CancellationToken::new();
        tasks.spawn(supervised(
            "recorder",
            with_debug_fault("recorder", recorder.run()),
            stop.clone(),
            failed.clone(),
        ));
        tasks.spawn(supervised(
            "dispatcher",
            with_debug_fault("dispatcher", dispatcher.run()),
            stop.clone(),
            failed.clone(),
        ));
        tasks.close();
        Self {
            store,
            handle: DispatchHandle {
                failed,
                owner,
                lease_duration: config.lease_duration,
                in_flight,
                handover: handover_tx,
                wake,
                slots,
                max_in_flight: config.max_in_flight,
            },
            stop,
            tasks,
        }
    }

    pub fn handle(&self) -> DispatchHandle {
        self.handle.clone()
    }

    /// Completes if the dispatcher or the recorder dies: the process must then stop, so that
    /// its supervisor starts a new one, rather than accept messages it will never deliver.
    pub fn failed(&self) -> CancellationToken {
        self.handle.failed.clone()
    }

    /// Stops claiming, lets attempts in flight finish (up to the drain timeout, then cancels
    /// them), records their results and only then gives back every lease still held, so a
    /// finished attempt is never made due again.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let owner = self.handle.owner.clone();
        drop(self.handle);
        self.tasks.wait().await;
        if let Err(err) = self.store.release_leases(&owner).await {
            warn!(error = %err, "releasing leases at shutdown failed; they expire on their own");
        }
    }
}

/// Debug builds only: `HOOKD_DEBUG_ENGINE_FAULT=<task>:<ms>` makes the engine's `dispatcher` or
/// `recorder` panic `ms` after it starts, so that a test of the binary can watch hookd notice
/// (crates/hookd-cli/tests/engine_liveness.rs). Nothing else can make these tasks die on
/// demand, and release builds carry no such switch.
#[cfg(debug_assertions)]
fn with_debug_fault(
    name: &'static str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let after_ms = std::env::var("HOOKD_DEBUG_ENGINE_FAULT")
        .ok()
        .and_then(|fault| {
            let (task, ms) = fault.split_once(':')?;
            (task == name).then(|| ms.parse::<u64>().ok()).flatten()
        });
    match after_ms {
        Some(ms) => Box::pin(async move {
            tokio::select! {
                () = task => {}
                () = tokio::time::sleep(Duration::from_millis(ms)) => {
                    panic!("HOOKD_DEBUG_ENGINE_FAULT: the {name} dies on purpose")
                }
            }
        }),
        None => Box::pin(task),
    }
}

#[cfg(not(debug_assertions))]
fn with_debug_fault(
    _name: &'static str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    task
}

/// Runs one of the engine's long-lived tasks. If it ends while the engine was not told to stop
/// (a panic, or a loop that returned), it says so and cancels `failed`.
async fn supervised(
    name: &'static str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
    stop: CancellationToken,
    failed: CancellationToken,
) {
    let ended = tokio::spawn(task).await;
    if stop.is_cancelled() {
        return;
    }
    match ended {
        Err(err) if err.is_panic() => {
            tracing::error!(
                task = name,
                "the delivery engine's {name} panicked; hookd stops"
            );
        }
        _ => tracing::error!(
            task = name,
            "the delivery engine's {name} stopped; hookd stops"
        ),
    }
    failed.cancel();
}

/// Receives work, claims due deliveries and starts attempts.
struct Dispatcher {
    store: SharedStore,
    ctx: Arc<AttemptContext>,
    config: EngineConfig,
    owner: String,
    slots: Arc<Semaphore>,
    handover: mpsc::Receiver<Vec<ClaimedDelivery>>,
    hints: mpsc::Receiver<i64>,
    /// Other nodes' wake-ups, when the store is shared (see [`crate::store::Store::wakeups`]).
    wakeups: Option<mpsc::Receiver<()>>,
    results: mpsc::Sender<AttemptResult>,
    wake: Arc<Notify>,
    /// Set when due work was left unclaimed for want of a free slot.
    starved: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
    stop: CancellationToken,
    attempts: JoinSet<()>,
}

impl Dispatcher {
    async fn run(mut self) {
        let mut next_claim = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                Some(batch) = self.handover.recv() => self.launch(batch).await,
                Some(due_at) = self.hints.recv() => {
                    next_claim = next_claim.min(instant_at(due_at));
                }
                () = self.wake.notified() => next_claim = Instant::now(),
                wakeup = next_wakeup(&mut self.wakeups) => match wakeup {
                    Some(()) => next_claim = Instant::now(),
                    // The listener stopped: polling alone finds the work from now on.
                    None => self.wakeups = None,
                },
                () = tokio::time::sleep_until(next_claim) => {
                    next_claim = self.claim_round().await;
                }
            }
        }
        self.drain().await;
    }

    /// Claims while there is room and work; returns when to look again.
    async fn claim_round(&mut self) -> Instant {
        let poll = Instant::now() + self.config.poll_interval;
        loop {
            let room = self.slots.available_permits().min(CLAIM_BATCH);
            if room == 0 {
                // Every slot is busy: the next attempt to finish wakes us (see `run_attempt`).
                self.starved.store(true, Ordering::Release);
                return poll;
            }
            let now = now_millis();
            let lease = Lease {
                skip_endpoints: self.in_flight.busy(),
                endpoint_room: self.in_flight.room(),
                ..Lease::new(
                    self.owner.clone(),
                    new_id(IdPrefix::Delivery),
                    now,
                    now + millis(self.config.lease_duration),
                )
            };
            let started = std::time::Instant::now();
            let claimed = match self.store.claim_due(&lease, room).await {
                Ok(claimed) => {
                    telemetry::claimed(started.elapsed());
                    claimed
                }
                Err(err) => {
                    error!(error = %err, "claiming due deliveries failed; retrying after the poll interval");
                    return poll;
                }
            };
            let full = claimed.len() == room;
            self.launch(claimed).await;
            if !full {
                // Due deliveries of busy endpoints are not a reason to look again at once (that
                // would spin): their endpoints' finished attempts wake the dispatcher.
                return self.next_due(poll, &self.in_flight.busy()).await;
            }
        }
    }

    async fn next_due(&self, poll: Instant, busy: &[EndpointId]) -> Instant {
        match self.store.next_due(busy, &self.owner).await {
            Ok(Some(due_at)) => poll.min(instant_at(due_at)),
            Ok(None) => poll,
            Err(err) => {
                warn!(error = %err, "reading the next due time failed");
                poll
            }
        }
    }

    /// Starts one attempt per delivery, waiting for a free slot for each.
    async fn launch(&mut self, batch: Vec<ClaimedDelivery>) {
        // Reap finished attempts so the set holds only those in flight.
        while self.attempts.try_join_next().is_some() {}
        // Deliveries handed over at ingest, or claimed in one batch, can exceed what an
        // endpoint may run and queue; those are given back to the store.
        let mut over_bound = Vec::new();
        for delivery in batch {
            let delivery = match self.in_flight.admit(delivery) {
                Admission::Start(delivery) => delivery,
                Admission::Queued => continue,
                Admission::Full(delivery) => {
                    over_bound.push(delivery);
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
                return;
            };
            self.attempts.spawn(run_attempts(
                Arc::clone(&self.ctx),
                delivery,
                slot,
                self.results.clone(),
                Waker {
                    wake: Arc::clone(&self.wake),
                    starved: Arc::clone(&self.starved),
                    in_flight: Arc::clone(&self.in_flight),
                    stop: self.stop.clone(),
                },
            ));
        }
        if !over_bound.is_empty() {
            // Due at once: claiming passes over the endpoint while it is full, and the first
            // place freed in its queue wakes the dispatcher to claim them.
            let at = now_millis();
            if let Err(err) = self.store.give_back(&over_bound, at).await {
                warn!(error = %err, "giving back deliveries failed; their leases expire on their own");
            }
        }
    }

    /// Waits for attempts in flight, up to the drain timeout; those still running then are
    /// cancelled (their deliveries are released by [`Engine::shutdown`]).
    async fn drain(mut self) {
        let all_done = async { while self.attempts.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.drain_timeout, all_done)
            .await
            .is_err()
        {
            warn!(
                in_flight = self.attempts.len(),
                "attempts still in flight at the shutdown deadline; they will be retried"
            );
            self.attempts.shutdown().await;
        }
        // Queued deliveries were never started; `Engine::shutdown` gives their leases back.
        self.in_flight.drain_queues();
        // Dropping the last senders lets the recorder write the final results and stop.
    }
}

/// The next wake-up from other nodes; never completes without a listener.
async fn next_wakeup(wakeups: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match wakeups {
        Some(wakeups) => wakeups.recv().await,
        None => std::future::pending().await,
    }
}

/// Wakes the dispatcher when a slot frees up while work waits for one.
struct Waker {
    wake: Arc<Notify>,
    starved: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
    /// Once cancelled, queued deliveries are no longer started.
    stop: CancellationToken,
}

/// Attempts `delivery`, then, in the same slot, each delivery its endpoint's queue hands over.
async fn run_attempts(
    ctx: Arc<AttemptContext>,
    mut delivery: ClaimedDelivery,
    slot: OwnedSemaphorePermit,
    results: mpsc::Sender<AttemptResult>,
    waker: Waker,
) {
    loop {
        // Every log line of the attempt carries these ids (never the payload or secrets).
        let span = tracing::info_span!(
            "attempt",
            app_id = %delivery.app_id,
            endpoint_id = %delivery.endpoint_id,
            msg_id = %delivery.msg_id,
        );
        let endpoint_id = delivery.endpoint_id.clone();
        let result =
            tracing::Instrument::instrument(attempt(Arc::clone(&ctx), delivery), span).await;
        let finished = waker
            .in_flight
            .finish(&endpoint_id, !waker.stop.is_cancelled());
        if finished.reopened {
            waker.wake.notify_one();
        }
        if results.send(result).await.is_err() {
            warn!(
                "the recorder has stopped; the attempt's lease will expire and it will be retried"
            );
        }
        match finished.next {
            Some(next) => delivery = next,
            None => break,
        }
    }
    drop(slot);
    if waker.starved.swap(false, Ordering::AcqRel) {
        waker.wake.notify_one();
    }
}

fn instant_at(due_at_ms: i64) -> Instant {
    let wait = due_at_ms.saturating_sub(now_millis()).max(0);
    Instant::now() + Duration::from_millis(u64::try_from(wait).unwrap_or(0))
}

/// Writes attempt results in batches, with the endpoint health bookkeeping they imply.
struct Recorder {
    store: SharedStore,
    results: mpsc::Receiver<AttemptResult>,
    hints: mpsc::Sender<i64>,
    health: HealthPolicy,
    operational: Emitter,
    traffic: Arc<Traffic>,
}

impl Recorder {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while self.results.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let mut released = false;
            if let Some(recorded) = self.record(&batch).await {
                // The batch's operational events were committed with it.
                if recorded.operational > 0 {
                    self.operational.committed();
                }
                let applied = batch
                    .iter()
                    .zip(&recorded.applied)
                    .filter_map(|(result, applied)| applied.then_some(result.attempt.success));
                let (delivered, failed) = applied.fold((0, 0), |(ok, bad), success| {
                    if success {
                        (ok + 1, bad)
                    } else {
                        (ok, bad + 1)
                    }
                });
                self.traffic.attempts(delivered, failed);
                released = recorded.released + recorded.caught_up > 0;
            }
            // Deliveries released by this batch (held ones of a finished key, waiting ones of a
            // recovered endpoint) are due now; retries when scheduled.
            let retries = batch.iter().filter_map(|r| match r.next {
                NextStep::RetryAt(at) => Some(at),
                _ => None,
            });
            if let Some(earliest) = retries.chain(released.then(now_millis)).min() {
                // Only a hint: polling finds the retry even if this is dropped.
                let _ = self.hints.try_send(earliest);
            }
            batch.clear();
        }
    }

    async fn record(&self, batch: &[AttemptResult]) -> Option<Recorded> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let now = now_millis();
            match self.store.record_attempts(batch, &self.health, now).await {
                Ok(recorded) => {
                    telemetry::committed("results", started.elapsed());
                    for disabled in &recorded.disabled {
                        warn!(
                            app_id = %disabled.app_id,
                            endpoint_id = %disabled.endpoint_id,
                            "endpoint disabled: it answered 410 Gone or only failed for the whole health period"
                        );
                    }
                    return Some(recorded);
                }
                Err(err) => {
                    warn!(error = %err, "recording attempt results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        // The deliveries keep their leases; when those expire they are attempted again.
        error!(count = batch.len(), "attempt results could not be recorded");
        None
    }
}

#[cfg(test)]
mod supervision_tests {
    use super::*;

    async fn outcome(
        task: impl std::future::Future<Output = ()> + Send + 'static,
        stop_first: bool,
    ) -> bool {
        let (stop, failed) = (CancellationToken::new(), CancellationToken::new());
        if stop_first {
            stop.cancel();
        }
        supervised("test task", task, stop, failed.clone()).await;
        failed.is_cancelled()
    }

    #[tokio::test]
    async fn a_task_that_dies_unasked_fails_the_engine() {
        assert!(outcome(async { panic!("a bug") }, false).await, "a panic");
        assert!(outcome(async {}, false).await, "a loop that returned");
    }

    #[tokio::test]
    async fn a_task_that_ends_when_told_to_stop_does_not() {
        assert!(!outcome(async {}, true).await);
    }
}
