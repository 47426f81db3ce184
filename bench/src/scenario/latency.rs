//! Ingest → delivery latency under a paced, open-loop offered rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use clap::Args;

use super::{
    drain_figure, health_figures, paced_publish, wait_for_deliveries, PublishStats, Setup,
};
use crate::cpu::CpuSample;
use crate::hookd::{Hookd, HookdConfig};
use crate::report::{latency_figures, Figure, Settings, PACED_LATENCY};

/// Lets hookd pick up the new endpoint before the first message.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Args, Clone, Debug)]
pub struct LatencyArgs {
    /// Offered messages per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Paced load before the measured window, in seconds (not counted).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
}

impl Default for LatencyArgs {
    fn default() -> Self {
        Self {
            rate: 500,
            duration: 20,
            warmup: 2,
        }
    }
}

impl LatencyArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("rate_per_s", self.rate.to_string()),
            ("warmup_s", self.warmup.to_string()),
            ("duration_s", self.duration.to_string()),
            ("endpoints", "1".to_owned()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &LatencyArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.rate > 0, "--rate must be positive");
    let mut hookd = Hookd::start(config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &LatencyArgs) -> anyhow::Result<Vec<Figure>> {
    // One idle connection per message in flight at ~100 ms latency.
    let setup = Setup::new(hookd, (args.rate / 10) as usize).await?;
    setup.add_endpoint(&setup.app_id, None).await?;
    tokio::time::sleep(SETTLE).await;
    let cpu_before = CpuSample::of(hookd)?;

    let warmup_count = u64::from(args.rate) * args.warmup;
    let total = warmup_count + u64::from(args.rate) * args.duration;
    let stats = Arc::new(PublishStats::default());
    let offered = paced_publish(&setup, &stats, f64::from(args.rate), warmup_count, total).await;
    stats.warn_if_failed("latency");
    hookd.ensure_running()?;

    let drain = wait_for_deliveries(hookd, &setup.receiver, stats.accepted()).await?;
    let cpu = cpu_before.until(&CpuSample::of(hookd)?);
    let measured: Vec<u64> = setup
        .receiver
        .samples()
        .iter()
        .filter(|s| s.seq >= warmup_count)
        .map(|s| s.latency_us())
        .collect();
    let count = measured.len() as f64;

    let mut figures = latency_figures(measured, &PACED_LATENCY);
    figures.push(Figure::new("count", "count", "", 0, count));
    figures.push(Figure::new("offered_per_s", "offered/s", "", 1, offered));
    figures.push(drain_figure(drain));
    figures.extend(cpu.figures(setup.receiver.unique()));
    figures.extend(health_figures(&stats, &setup.receiver, stats.accepted()));
    Ok(figures)
}
