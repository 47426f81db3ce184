//! Fan-out: one message to N endpoints, time until the last delivery lands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use clap::Args;

use super::{
    drain_figure, health_figures, paced_publish, wait_for_deliveries, PublishStats, Setup,
};
use crate::cpu::CpuSample;
use crate::hookd::{Hookd, HookdConfig};
use crate::receiver::Sample;
use crate::report::{latency_figures, Figure, LatencyNames, Settings};

/// Lets hookd pick up the new endpoints before the first message.
const SETTLE: Duration = Duration::from_secs(1);

const COMPLETION: LatencyNames = [
    ("p50_ms", "all-delivered p50"),
    ("p90_ms", "all-delivered p90"),
    ("p99_ms", "all-delivered p99"),
    ("max_ms", "all-delivered max"),
];

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Messages to send, one at a time.
    #[arg(long, default_value_t = 200)]
    pub messages: u64,
    /// Endpoints subscribed to every message.
    #[arg(long, default_value_t = 100)]
    pub endpoints: u32,
    /// Messages sent per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
}

impl Default for FanoutArgs {
    fn default() -> Self {
        Self {
            messages: 200,
            endpoints: 100,
            rate: 10.0,
        }
    }
}

impl FanoutArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("messages", self.messages.to_string()),
            ("endpoints", self.endpoints.to_string()),
            ("rate_per_s", self.rate.to_string()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &FanoutArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(args.endpoints > 0, "--endpoints must be positive");
    let mut hookd = Hookd::start(config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &FanoutArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Setup::new(hookd, 4).await?;
    for n in 0..args.endpoints {
        setup.add_endpoint(&setup.app_id, Some(n)).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let cpu_before = CpuSample::of(hookd)?;

    let stats = Arc::new(PublishStats::default());
    paced_publish(&setup, &stats, args.rate, 0, args.messages).await;
    stats.warn_if_failed("fanout");
    hookd.ensure_running()?;

    let expected = stats.accepted() * u64::from(args.endpoints);
    let drain = wait_for_deliveries(hookd, &setup.receiver, expected).await?;
    let cpu = cpu_before.until(&CpuSample::of(hookd)?);
    let times = completion_times(&setup.receiver.samples(), args.endpoints);
    let complete = times.len() as f64;

    let mut figures = latency_figures(times, &COMPLETION);
    figures.push(Figure::new(
        "complete",
        "complete messages",
        "",
        0,
        complete,
    ));
    figures.push(Figure::new(
        "incomplete",
        "incomplete messages",
        "",
        0,
        stats.accepted() as f64 - complete,
    ));
    figures.push(drain_figure(drain));
    figures.extend(cpu.figures(setup.receiver.unique()));
    figures.extend(health_figures(&stats, &setup.receiver, expected));
    Ok(figures)
}

/// For each message delivered to all `endpoints`, the microseconds from its
/// send to the first arrival at the last endpoint to get it. Duplicate
/// deliveries to an endpoint do not count as reaching another one.
fn completion_times(samples: &[Sample], endpoints: u32) -> Vec<u64> {
    let mut first_arrival: HashMap<(u64, u32), &Sample> = HashMap::new();
    for s in samples.iter().filter(|s| s.endpoint < endpoints) {
        first_arrival
            .entry((s.seq, s.endpoint))
            .and_modify(|seen| {
                if s.recv_us < seen.recv_us {
                    *seen = s;
                }
            })
            .or_insert(s);
    }
    // seq -> (endpoints reached, latest first arrival among them)
    let mut per_message: HashMap<u64, (u32, u64)> = HashMap::new();
    for s in first_arrival.values() {
        let entry = per_message.entry(s.seq).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(s.latency_us());
    }
    per_message
        .into_values()
        .filter(|&(reached, _)| reached == endpoints)
        .map(|(_, last)| last)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, endpoint: u32, recv_us: u64) -> Sample {
        Sample {
            seq,
            endpoint,
            sent_us: 100,
            recv_us,
        }
    }

    #[test]
    fn completion_waits_for_every_endpoint() {
        let samples = [
            sample(1, 0, 150),
            sample(1, 1, 400),
            sample(1, 1, 900), // duplicate: the first arrival counts
            sample(2, 0, 200), // message 2 never reaches endpoint 1
            sample(2, 0, 300),
        ];
        assert_eq!(completion_times(&samples, 2), vec![300]);
    }
}
