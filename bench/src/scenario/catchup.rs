//! Catch-up after an outage: one endpoint is down while `--backlog` (1,000,000) deliveries
//! pile up for it, then it comes back. Measures how fast hookd drains the backlog, while a
//! second, healthy endpoint (another application) gets paced messages throughout and its
//! latency is measured over the drain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Args;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use super::{
    drain_figure, health_figures, mib, wait_for_deliveries, PublishStats, RssSampler, Setup,
};
use crate::api::Api;
use crate::clock::Clock;
use crate::cpu::CpuSample;
use crate::hookd::{Hookd, HookdConfig};
use crate::receiver::{Outage, Sample};
use crate::report::{latency_figures, Figure, LatencyNames, Settings};

/// The receiver's endpoint (`/hook/<n>`) that goes down, and the healthy one.
const DOWN: u32 = 0;
const HEALTHY: u32 = 1;
/// Sequence numbers of the healthy application's messages start here, far above the backlog's.
const HEALTHY_SEQ_BASE: u64 = 1 << 40;
/// Lets hookd pick up the new endpoints before the first message.
const SETTLE: Duration = Duration::from_millis(500);
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// After a transport error, so a dead server is not hammered in a tight loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

const HEALTHY_LATENCY: LatencyNames = [
    ("healthy_p50_ms", "healthy p50"),
    ("healthy_p90_ms", "healthy p90"),
    ("healthy_p99_ms", "healthy p99"),
    ("healthy_max_ms", "healthy max"),
];

#[derive(Args, Clone, Debug)]
pub struct CatchupArgs {
    /// Deliveries that pile up for the endpoint while it is down.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// Concurrent closed-loop publishers piling the backlog up.
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// How the endpoint is down: `error` answers 503 (attempts fail fast and wait for their
    /// retry), `hang` answers nothing until it comes back (attempts hold hookd's slots).
    #[arg(long, value_enum, default_value_t = Outage::Error)]
    pub down: Outage,
    /// Seconds the endpoint stays down after the whole backlog was accepted.
    #[arg(long, default_value_t = 0)]
    pub down_extra: u64,
    /// Messages/s offered to the healthy endpoint, from before the outage to the drain's end.
    #[arg(long, default_value_t = 100)]
    pub healthy_rate: u32,
    /// Longest wait, in seconds, for the backlog to drain once the endpoint is back; what is
    /// left then is missing and fails the run.
    #[arg(long, default_value_t = 600)]
    pub drain_timeout: u64,
}

impl CatchupArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("backlog", self.backlog.to_string()),
            ("publishers", self.publishers.to_string()),
            ("down", format!("{:?}", self.down).to_lowercase()),
            ("down_extra_s", self.down_extra.to_string()),
            ("healthy_rate_per_s", self.healthy_rate.to_string()),
            ("drain_timeout_s", self.drain_timeout.to_string()),
            ("endpoints", "2".to_owned()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &CatchupArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.backlog > 0, "--backlog must be at least 1");
    ensure!(args.publishers > 0, "--publishers must be at least 1");
    ensure!(args.healthy_rate > 0, "--healthy-rate must be positive");
    let mut hookd = Hookd::start(config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &CatchupArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Setup::new(hookd, args.publishers).await?;
    setup.add_endpoint(&setup.app_id, Some(DOWN)).await?;
    let healthy_app = setup.api.create_app().await?;
    setup.add_endpoint(&healthy_app, Some(HEALTHY)).await?;
    tokio::time::sleep(SETTLE).await;

    // 1. The outage: the backlog piles up while the healthy endpoint is served.
    setup.receiver.set_outage(DOWN, Some(args.down));
    let sampler = RssSampler::start(hookd.pids());
    let healthy = PacedLoad::start(&setup, healthy_app, args.healthy_rate);
    let pile_start = Instant::now();
    let pile_start_us = setup.clock.now_us();
    let backlog = pile_up(&setup, args.backlog, args.publishers).await;
    let pileup_s = pile_start.elapsed().as_secs_f64();
    backlog.warn_if_failed("catchup backlog");
    eprintln!(
        "{} backlog messages accepted in {pileup_s:.1} s; the endpoint comes back in {} s",
        backlog.accepted(),
        args.down_extra
    );
    tokio::time::sleep(Duration::from_secs(args.down_extra)).await;
    hookd.ensure_running()?;
    let rss_pending = hookd.rss_kib()?;

    // 2. It comes back: drain.
    let cpu_before = CpuSample::of(hookd)?;
    let unique_before = setup.receiver.unique();
    let up_us = setup.clock.now_us();
    setup.receiver.set_outage(DOWN, None);
    let drained = wait_for_backlog(hookd, &setup, backlog.accepted(), args.drain_timeout).await?;
    let done_us = setup.clock.now_us();
    let cpu = cpu_before.until(&CpuSample::of(hookd)?);
    let delivered_in_drain = setup.receiver.unique() - unique_before;
    let rss_peak = sampler.stop().await?;

    // 3. The healthy endpoint's last messages, and anything else in flight.
    let healthy = healthy.stop().await;
    healthy.warn_if_failed("catchup healthy");
    let expected = backlog.accepted() + healthy.accepted();
    let left = backlog
        .accepted()
        .saturating_sub(setup.receiver.unique_for(DOWN));
    let tail = if drained {
        wait_for_deliveries(hookd, &setup.receiver, expected).await?
    } else {
        // What hookd did not deliver in the drain timeout is the finding; waiting on is not.
        eprintln!(
            "warning: catchup: {left} of {} backlog deliveries still undelivered {} s after the \
             endpoint came back (--drain-timeout); they count as missing",
            backlog.accepted(),
            args.drain_timeout
        );
        None
    };

    let samples = setup.receiver.samples();
    let drain = DrainTimes::of(&samples, up_us);
    let healthy_while_down = latencies(&samples, HEALTHY, pile_start_us..up_us);
    let healthy_latency = latencies(&samples, HEALTHY, up_us..done_us);

    let mut figures = vec![
        Figure::new("drain_per_s", "backlog drained/s", "", 1, drain.per_s()),
        Figure::new("drain_s", "drain", "s", 2, drain.last_s),
        Figure::new(
            "first_after_up_s",
            "first backlog delivery after coming back",
            "s",
            2,
            drain.first_s,
        ),
    ];
    figures.extend(cpu.figures(delivered_in_drain));
    figures.push(Figure::new(
        "healthy_count",
        "healthy deliveries during drain",
        "",
        0,
        healthy_latency.len() as f64,
    ));
    figures.extend(latency_figures(healthy_latency, &HEALTHY_LATENCY));
    let mut while_down = latency_figures(healthy_while_down, &HEALTHY_LATENCY)[2].clone();
    while_down.key = "healthy_pileup_p99_ms";
    while_down.label = "healthy p99 during pile-up";
    figures.push(while_down);
    figures.extend([
        Figure::new(
            "backlog",
            "backlog accepted",
            "",
            0,
            backlog.accepted() as f64,
        ),
        Figure::new("pileup_s", "pile-up", "s", 1, pileup_s),
        Figure::new(
            "rss_pending_mib",
            "RSS with the backlog pending",
            "MiB",
            1,
            mib(rss_pending),
        ),
        Figure::new(
            "rss_peak_mib",
            "RSS peak (pile-up and drain)",
            "MiB",
            1,
            mib(rss_peak),
        ),
        Figure::new(
            "attempts_while_down",
            "attempts while down",
            "",
            0,
            setup.receiver.attempts_while_down() as f64,
        ),
        Figure::new(
            "backlog_left",
            "backlog left at drain timeout",
            "",
            0,
            if drained { 0.0 } else { left as f64 },
        ),
    ]);
    let mut tail_figure = drain_figure(tail);
    tail_figure.key = "tail_s";
    tail_figure.label = "tail after drain";
    figures.push(tail_figure);
    let stats = PublishStats::combined(&backlog, &healthy);
    figures.extend(health_figures(&stats, &setup.receiver, expected));
    Ok(figures)
}

/// Latencies (µs) of the deliveries to `endpoint` of messages sent within `sent_us`.
fn latencies(samples: &[Sample], endpoint: u32, sent_us: std::ops::Range<u64>) -> Vec<u64> {
    samples
        .iter()
        .filter(|s| s.endpoint == endpoint && sent_us.contains(&s.sent_us))
        .map(Sample::latency_us)
        .collect()
}

/// Waits until the down endpoint has `target` distinct deliveries; false if `timeout_s`
/// passed first.
async fn wait_for_backlog(
    hookd: &mut Hookd,
    setup: &Setup,
    target: u64,
    timeout_s: u64,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    while Instant::now() < deadline {
        if setup.receiver.unique_for(DOWN) >= target {
            return Ok(true);
        }
        hookd.ensure_running()?;
        tokio::time::sleep(DRAIN_POLL).await;
    }
    Ok(false)
}

/// When the backlog's first and last deliveries after the endpoint came back arrived.
struct DrainTimes {
    count: u64,
    first_s: f64,
    last_s: f64,
}

impl DrainTimes {
    fn of(samples: &[Sample], up_us: u64) -> Self {
        let after_up: Vec<u64> = samples
            .iter()
            .filter(|s| s.endpoint == DOWN && s.recv_us >= up_us)
            .map(|s| s.recv_us - up_us)
            .collect();
        let seconds = |us: Option<&u64>| us.map_or(f64::NAN, |&us| us as f64 / 1e6);
        Self {
            count: after_up.len() as u64,
            first_s: seconds(after_up.iter().min()),
            last_s: seconds(after_up.iter().max()),
        }
    }

    /// Deliveries per second from the moment the endpoint came back to the last one.
    fn per_s(&self) -> f64 {
        match self.count {
            0 => f64::NAN,
            n => n as f64 / self.last_s,
        }
    }
}

/// Publishes messages `0..backlog` to the down endpoint's application with `publishers`
/// closed-loop tasks.
async fn pile_up(setup: &Setup, backlog: u64, publishers: usize) -> Arc<PublishStats> {
    let stats = Arc::new(PublishStats::default());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..publishers {
        let (api, app_id, clock) = (setup.api.clone(), setup.app_id.clone(), setup.clock);
        let (stats, next) = (stats.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= backlog {
                    return;
                }
                if !stats.record(api.publish(&app_id, seq, clock.now_us()).await) {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    stats
}

/// An open-loop publisher at a fixed rate to one application, until stopped; each send in its
/// own task, so a slow answer never delays the next.
struct PacedLoad {
    stop: Arc<AtomicBool>,
    stats: Arc<PublishStats>,
    task: JoinHandle<()>,
}

impl PacedLoad {
    fn start(setup: &Setup, app_id: String, rate: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PublishStats::default());
        let task = tokio::spawn(paced(
            setup.api.clone(),
            setup.clock,
            app_id,
            rate,
            stop.clone(),
            stats.clone(),
        ));
        Self { stop, stats, task }
    }

    /// Stops sending and waits for the sends in flight to be answered.
    async fn stop(self) -> Arc<PublishStats> {
        self.stop.store(true, Ordering::Relaxed);
        // A panicked sender shows up as missing messages.
        let _ = self.task.await;
        self.stats
    }
}

async fn paced(
    api: Api,
    clock: Clock,
    app_id: String,
    rate: u32,
    stop: Arc<AtomicBool>,
    stats: Arc<PublishStats>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sends = JoinSet::new();
    let mut seq = HEALTHY_SEQ_BASE;
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let (api, app_id, stats) = (api.clone(), app_id.clone(), stats.clone());
        sends.spawn(async move {
            stats.record(api.publish(&app_id, seq, clock.now_us()).await);
        });
        seq += 1;
        // Reap finished sends so the set does not grow with the run.
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: u32, recv_us: u64) -> Sample {
        Sample {
            seq: 0,
            endpoint,
            sent_us: 0,
            recv_us,
        }
    }

    #[test]
    fn drain_counts_the_backlog_after_coming_back() {
        let samples = [
            sample(DOWN, 500),       // before it came back: not part of the drain
            sample(DOWN, 1_500_000), // 0.5 s after
            sample(HEALTHY, 2_000_000),
            sample(DOWN, 3_000_000), // 2 s after: the last
        ];
        let drain = DrainTimes::of(&samples, 1_000_000);
        assert_eq!(drain.count, 2);
        assert_eq!((drain.first_s, drain.last_s), (0.5, 2.0));
        assert_eq!(drain.per_s(), 1.0);
        assert!(DrainTimes::of(&[], 0).per_s().is_nan());
    }
}
