//! Sustained deliveries/s with N closed-loop publishers, one endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::task::JoinSet;

use super::{
    drain_figure, health_figures, mib, wait_for_deliveries, PublishStats, RssSampler, Setup,
};
use crate::cpu::CpuSample;
use crate::hookd::{Hookd, HookdConfig};
use crate::report::{latency_figures, Figure, LatencyNames, Settings};

/// hookd idles this long after setup before its idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// After a transport error, so a dead server is not hammered in a tight loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

const LOADED_LATENCY: LatencyNames = [
    ("loaded_p50_ms", "loaded p50"),
    ("loaded_p90_ms", "loaded p90"),
    ("loaded_p99_ms", "loaded p99"),
    ("loaded_max_ms", "loaded max"),
];

#[derive(Args, Clone, Debug)]
pub struct ThroughputArgs {
    /// Concurrent publisher tasks, each POSTing back to back.
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// Measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Load before the measured window, in seconds (not counted).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Before the load, this many messages to a second application whose endpoint never
    /// answers (every attempt runs into hookd's request timeout): a dead merchant whose
    /// backlog must not slow the healthy one.
    #[arg(long, default_value_t = 0)]
    pub dead_backlog: u64,
}

impl Default for ThroughputArgs {
    fn default() -> Self {
        Self {
            publishers: 64,
            duration: 20,
            warmup: 3,
            dead_backlog: 0,
        }
    }
}

impl ThroughputArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("publishers", self.publishers.to_string()),
            ("warmup_s", self.warmup.to_string()),
            ("duration_s", self.duration.to_string()),
            ("endpoints", "1".to_owned()),
            ("dead_backlog", self.dead_backlog.to_string()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &ThroughputArgs) -> anyhow::Result<Vec<Figure>> {
    let mut hookd = Hookd::start(config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

/// Receiver count, publisher count and CPU counters at one instant.
struct Mark {
    at: Instant,
    at_us: u64,
    delivered: u64,
    accepted: u64,
    cpu: CpuSample,
}

async fn measure(hookd: &mut Hookd, args: &ThroughputArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Setup::new(hookd, args.publishers).await?;
    setup.add_endpoint(&setup.app_id, None).await?;
    let apps: Arc<[String]> = Arc::from([setup.app_id.clone()]);
    sustained(hookd, &setup, apps, args).await
}

/// The closed-loop load and its figures, once the endpoints exist: message `seq` goes to
/// application `apps[seq % apps.len()]`, whose one endpoint is the receiver's `/hook/<that
/// index>` (plain `/hook` for a single application).
pub async fn sustained(
    hookd: &mut Hookd,
    setup: &Setup,
    apps: Arc<[String]>,
    args: &ThroughputArgs,
) -> anyhow::Result<Vec<Figure>> {
    tokio::time::sleep(IDLE_SETTLE).await;
    let rss_idle = hookd.rss_kib()?;
    let _dead = if args.dead_backlog > 0 {
        Some(DeadMerchant::start(setup, args.dead_backlog, args.publishers).await?)
    } else {
        None
    };

    let sampler = RssSampler::start(hookd.pids());
    let load = Load::start(setup, apps, args.publishers);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let begin = mark(setup, &load, hookd)?;
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let end = mark(setup, &load, hookd)?;
    let stats = load.stop().await;
    let rss_peak = sampler.stop().await?;
    stats.warn_if_failed("throughput");
    hookd.ensure_running()?;

    let drain = wait_for_deliveries(hookd, &setup.receiver, stats.accepted()).await?;
    let window = end.at.duration_since(begin.at).as_secs_f64();
    let loaded: Vec<u64> = setup
        .receiver
        .samples()
        .iter()
        .filter(|s| (begin.at_us..end.at_us).contains(&s.sent_us))
        .map(|s| s.latency_us())
        .collect();
    let delivered = end.delivered - begin.delivered;

    let mut figures = vec![
        Figure::new(
            "deliveries_per_s",
            "deliveries/s",
            "",
            1,
            per_s(delivered, window),
        ),
        Figure::new(
            "ingest_per_s",
            "ingest/s",
            "",
            1,
            per_s(end.accepted - begin.accepted, window),
        ),
    ];
    // hookd's CPU per delivery stands beside the throughput it bought.
    figures.extend(begin.cpu.until(&end.cpu).figures(delivered));
    figures.extend([
        Figure::new("accepted", "accepted", "", 0, stats.accepted() as f64),
        drain_figure(drain),
        Figure::new("rss_idle_mib", "RSS idle", "MiB", 1, mib(rss_idle)),
        Figure::new(
            "rss_peak_mib",
            "RSS peak under load",
            "MiB",
            1,
            mib(rss_peak),
        ),
    ]);
    figures.extend(latency_figures(loaded, &LOADED_LATENCY));
    figures.extend(health_figures(&stats, &setup.receiver, stats.accepted()));
    Ok(figures)
}

fn mark(setup: &Setup, load: &Load, hookd: &Hookd) -> anyhow::Result<Mark> {
    Ok(Mark {
        at: Instant::now(),
        at_us: setup.clock.now_us(),
        delivered: setup.receiver.unique(),
        accepted: load.stats.accepted(),
        cpu: CpuSample::of(hookd)?,
    })
}

fn per_s(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds
}

/// The application message `seq` goes to, out of `apps`; its endpoint is `/hook/<index>`.
pub fn app_index(seq: u64, apps: usize) -> usize {
    usize::try_from(seq % apps.max(1) as u64).unwrap_or(0)
}

/// A merchant whose endpoint accepts connections and never answers, with a backlog of
/// messages; kept alive for the run.
struct DeadMerchant {
    _listener: tokio::task::JoinHandle<()>,
}

impl DeadMerchant {
    async fn start(setup: &Setup, backlog: u64, publishers: usize) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/dead", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket); // Never read, never answered: the attempt times out.
            }
        });
        let app_id = setup.api.create_app().await?;
        setup.api.create_endpoint(&app_id, &url).await?;
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..publishers {
            let (api, app_id, clock, next) =
                (setup.api.clone(), app_id.clone(), setup.clock, next.clone());
            tasks.spawn(async move {
                loop {
                    // Sequence numbers far above the healthy ones, so the receiver never
                    // mistakes them (they never reach it anyway).
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= backlog {
                        return Ok::<_, anyhow::Error>(());
                    }
                    api.publish(&app_id, u64::MAX / 2 + seq, clock.now_us())
                        .await?;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(Self { _listener: task })
    }
}

/// Closed-loop publishers: each sends its next message as soon as the
/// previous one is answered.
struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<PublishStats>,
    tasks: JoinSet<()>,
}

impl Load {
    fn start(setup: &Setup, apps: Arc<[String]>, publishers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PublishStats::default());
        let next_seq = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..publishers {
            let (api, apps, clock) = (setup.api.clone(), apps.clone(), setup.clock);
            let (stop, stats, next_seq) = (stop.clone(), stats.clone(), next_seq.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                    let app_id = &apps[app_index(seq, apps.len())];
                    let outcome = api.publish(app_id, seq, clock.now_us()).await;
                    if !stats.record(outcome) {
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
            });
        }
        Self { stop, stats, tasks }
    }

    /// Stops publishing and waits for the calls in flight to be answered.
    async fn stop(mut self) -> Arc<PublishStats> {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        self.stats
    }
}
