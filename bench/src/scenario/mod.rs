//! The three measurements BENCHMARKS.md ("Targets") defines, issue 16's catch-up after an
//! outage and many merchants, the merchant portal's pages, the operator dashboard's, and the
//! pieces they share.

pub mod catchup;
pub mod dashboard;
pub mod fanout;
pub mod latency;
pub mod merchants;
pub mod portal;
pub mod soak;
pub mod throughput;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::api::Api;
use crate::clock::Clock;
use crate::hookd::{read_vm_rss, Hookd};
use crate::receiver::Receiver;
use crate::report::Figure;

/// How long to wait after publishing stops for deliveries to catch up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_POLL: Duration = Duration::from_millis(10);
const RSS_POLL: Duration = Duration::from_millis(250);

/// A fresh receiver and an app in hookd, ready for endpoints.
pub struct Setup {
    pub clock: Clock,
    pub receiver: Receiver,
    pub api: Api,
    pub app_id: String,
}

impl Setup {
    pub async fn new(hookd: &Hookd, pool: usize) -> anyhow::Result<Self> {
        let clock = Clock::new();
        let receiver = Receiver::start(clock).await?;
        let api = Api::new(hookd, pool)?;
        let app_id = api.create_app().await?;
        Ok(Self {
            clock,
            receiver,
            api,
            app_id,
        })
    }

    /// Creates an endpoint of `app_id` at the receiver's `/hook` (`None`) or `/hook/<n>`, and
    /// tells the receiver its secret, read back through the API, so every delivery to it is
    /// verified. Answers the endpoint's id.
    pub async fn add_endpoint(&self, app_id: &str, index: Option<u32>) -> anyhow::Result<String> {
        let endpoint_id = self
            .api
            .create_endpoint(app_id, &self.receiver.url(index))
            .await?;
        self.expect_secret_of(app_id, &endpoint_id, index).await?;
        Ok(endpoint_id)
    }

    /// Tells the receiver the secret of an endpoint created elsewhere at `/hook` (`None`) or
    /// `/hook/<n>`.
    pub async fn expect_secret_of(
        &self,
        app_id: &str,
        endpoint_id: &str,
        index: Option<u32>,
    ) -> anyhow::Result<()> {
        let secret = self
            .api
            .endpoint_secret(app_id, endpoint_id)
            .await
            .with_context(|| format!("reading the secret of endpoint {endpoint_id}"))?;
        self.receiver.expect_secret(index.unwrap_or(0), &secret)
    }
}

/// Outcome counters of the publish calls, shared by publisher tasks.
#[derive(Default)]
pub struct PublishStats {
    accepted: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl PublishStats {
    /// Returns whether the publish was accepted.
    pub fn record(&self, outcome: anyhow::Result<()>) -> bool {
        match outcome {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                first.get_or_insert_with(|| format!("{e:#}"));
                false
            }
        }
    }

    /// The counts of two groups of publishers together; the first error of the first group
    /// that had one.
    pub fn combined(a: &PublishStats, b: &PublishStats) -> PublishStats {
        let first_error = [a, b].iter().find_map(|stats| {
            stats
                .first_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
        });
        PublishStats {
            accepted: AtomicU64::new(a.accepted() + b.accepted()),
            failed: AtomicU64::new(a.failed() + b.failed()),
            first_error: Mutex::new(first_error),
        }
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Prints the first failure, so a failing server is visible in the output.
    pub fn warn_if_failed(&self, scenario: &str) {
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(e) = first.as_ref() {
            eprintln!(
                "warning: {scenario}: {} publish calls failed; first error: {e}",
                self.failed()
            );
        }
    }
}

/// Samples hookd's RSS (all nodes together) in the background and keeps the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut ticker = tokio::time::interval(RSS_POLL);
            while !flag.load(Ordering::Relaxed) {
                ticker.tick().await;
                // A failed read means hookd is gone; the run reports that itself.
                let total: anyhow::Result<u64> = pids.iter().map(|&pid| read_vm_rss(pid)).sum();
                if let Ok(kib) = total {
                    peak = peak.max(kib);
                }
            }
            peak
        });
        Self { stop, task }
    }

    /// Peak RSS in KiB seen since `start`.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Waits until the receiver has `target` distinct deliveries. Returns the
/// time it took, or `None` if `DRAIN_TIMEOUT` passed first.
pub async fn wait_for_deliveries(
    hookd: &mut Hookd,
    receiver: &Receiver,
    target: u64,
) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    while start.elapsed() < DRAIN_TIMEOUT {
        if receiver.unique() >= target {
            return Ok(Some(start.elapsed()));
        }
        hookd.ensure_running()?;
        tokio::time::sleep(DRAIN_POLL).await;
    }
    Ok(None)
}

/// Time the receiver needed to catch up after publishing stopped; n/a
/// when it did not within `DRAIN_TIMEOUT`.
pub fn drain_figure(drain: Option<Duration>) -> Figure {
    let seconds = drain.map_or(f64::NAN, |d| d.as_secs_f64());
    Figure::new("drain_s", "drain", "s", 2, seconds)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Figures every scenario reports about what went wrong, if anything. A run with any of
/// [`UNTRUSTWORTHY`] above zero fails (see `main`'s `verdict`).
pub fn health_figures(stats: &PublishStats, receiver: &Receiver, expected: u64) -> Vec<Figure> {
    let missing = expected as f64 - receiver.unique() as f64;
    if let Some(why) = receiver.first_bad_signature() {
        eprintln!(
            "warning: {} deliveries failed signature verification; the first: {why}",
            receiver.bad_signatures()
        );
    }
    vec![
        Figure::new(
            "publish_failed",
            "publish failed",
            "",
            0,
            stats.failed() as f64,
        ),
        Figure::new("missing", "missing", "", 0, missing),
        Figure::new(
            "bad_signatures",
            "bad signatures",
            "",
            0,
            receiver.bad_signatures() as f64,
        ),
        Figure::new(
            "duplicates",
            "duplicates",
            "",
            0,
            receiver.duplicates() as f64,
        ),
        Figure::new(
            "unparsed",
            "unparsed bodies",
            "",
            0,
            receiver.unparsed() as f64,
        ),
        Figure::new(
            "verify_us_per_delivery",
            "signature check/delivery",
            "µs",
            1,
            receiver.verify_us_per_delivery(),
        ),
    ]
}

/// The health figures that make a run's other figures worthless when above zero: something
/// was lost, refused or forged, so the bench (or hookd) is broken, whatever the speed.
pub const UNTRUSTWORTHY: [&str; 4] = ["missing", "publish_failed", "bad_signatures", "unparsed"];

/// Sends messages `0..total` at the configured pace, each in its own task
/// so a slow answer never delays the next send. Returns the rate actually
/// offered during the measured part (messages `warmup_count..total`).
pub async fn paced_publish(
    setup: &Setup,
    stats: &Arc<PublishStats>,
    rate: f64,
    warmup_count: u64,
    total: u64,
) -> f64 {
    let apps: Arc<[String]> = Arc::new([setup.app_id.clone()]);
    paced_publish_to(setup, stats, rate, warmup_count, total, &apps).await
}

/// [`paced_publish`] spreading the messages over `apps`: message `seq` goes to application
/// `seq % apps.len()`.
pub async fn paced_publish_to(
    setup: &Setup,
    stats: &Arc<PublishStats>,
    rate: f64,
    warmup_count: u64,
    total: u64,
    apps: &Arc<[String]>,
) -> f64 {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(period);
    // Catch up after a stall, so the offered rate stays what was asked.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let mut window_start = Instant::now();
    for seq in 0..total {
        ticker.tick().await;
        if seq == warmup_count {
            window_start = Instant::now();
        }
        let (api, apps, clock, stats) =
            (setup.api.clone(), apps.clone(), setup.clock, stats.clone());
        tasks.spawn(async move {
            let app_id = &apps[usize::try_from(seq).unwrap_or(0) % apps.len()];
            // Stamped here, right before the POST, as the latency definition says.
            stats.record(api.publish(app_id, seq, clock.now_us()).await);
        });
        // Reap finished sends so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    // n ticks span n - 1 periods; the last send owns one more.
    let sent = total - warmup_count;
    let offered = sent as f64 / (window_start.elapsed() + period).as_secs_f64();
    while tasks.join_next().await.is_some() {}
    offered
}
