//! Many merchants: `--apps` (10,000) applications with one endpoint each, the closed-loop
//! publishers spreading their messages over all of them (message `seq` to application
//! `seq % apps`), measured as `throughput` measures one endpoint. Its figures beside
//! `throughput`'s show what thousands of endpoints cost the claim.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;

use super::throughput::{sustained, ThroughputArgs};
use super::Setup;
use crate::hookd::{Hookd, HookdConfig};
use crate::report::{Figure, Settings};

#[derive(Args, Clone, Debug)]
pub struct MerchantsArgs {
    /// Applications, one endpoint each.
    #[arg(long, default_value_t = 10_000)]
    pub apps: u32,
    /// Concurrent API calls while creating the applications and endpoints.
    #[arg(long, default_value_t = 16)]
    pub setup_tasks: usize,
    /// Answer every delivery this many ms late (0: at once). Slow endpoints keep hookd's
    /// attempts in flight, so thousands of endpoints sit at their bounds and the claim has to
    /// pass over them.
    #[arg(long, default_value_t = 0)]
    pub endpoint_delay_ms: u64,
    #[command(flatten)]
    pub load: ThroughputArgs,
}

impl MerchantsArgs {
    pub fn settings(&self) -> Settings {
        let mut settings = self.load.settings();
        settings.retain(|(key, _)| *key != "endpoints");
        settings.push(("apps", self.apps.to_string()));
        settings.push(("endpoints", self.apps.to_string()));
        settings.push(("endpoint_delay_ms", self.endpoint_delay_ms.to_string()));
        settings
    }
}

pub async fn run_once(config: &HookdConfig, args: &MerchantsArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.apps > 0, "--apps must be at least 1");
    ensure!(args.setup_tasks > 0, "--setup-tasks must be at least 1");
    let mut hookd = Hookd::start(config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &MerchantsArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Arc::new(Setup::new(hookd, args.load.publishers.max(args.setup_tasks)).await?);
    let started = Instant::now();
    let apps = create_merchants(&setup, args.apps, args.setup_tasks).await?;
    let setup_s = started.elapsed().as_secs_f64();
    // PostgreSQL plans hookd's statements once per connection while the tables are nearly
    // empty (a sequential scan is then cheapest) and keeps those plans until the tables are
    // analyzed; autovacuum would do that within a minute of the burst, but this machine's
    // server runs without it. Without this, the run measured ten thousand sequential scans.
    hookd.analyze().await?;
    setup
        .receiver
        .set_answer_delay(Duration::from_millis(args.endpoint_delay_ms));
    eprintln!(
        "created {} applications and endpoints in {setup_s:.1} s",
        args.apps
    );
    let mut figures = sustained(hookd, &setup, apps, &args.load).await?;
    // Proves the messages were spread: every merchant's endpoint should have had some.
    let reached: HashSet<u32> = setup
        .receiver
        .samples()
        .iter()
        .map(|s| s.endpoint)
        .collect();
    figures.push(Figure::new(
        "endpoints_reached",
        "endpoints reached",
        "",
        0,
        reached.len() as f64,
    ));
    figures.push(Figure::new("setup_s", "API setup", "s", 1, setup_s));
    Ok(figures)
}

/// Creates `count` applications (uid `merchant-<n>`) with one endpoint each at the receiver's
/// `/hook/<n>`, `tasks` at a time, and registers each endpoint's secret with the receiver.
/// Answers the application ids by `n`.
async fn create_merchants(
    setup: &Arc<Setup>,
    count: u32,
    tasks: usize,
) -> anyhow::Result<Arc<[String]>> {
    let next = Arc::new(AtomicUsize::new(0));
    let count = count as usize;
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (setup, next) = (setup.clone(), next.clone());
        set.spawn(async move {
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(made);
                }
                made.push((n, create_merchant(&setup, n).await?));
            }
        });
    }
    let mut ids = vec![String::new(); count];
    while let Some(done) = set.join_next().await {
        for (n, id) in done?? {
            ids[n] = id;
        }
    }
    Ok(ids.into())
}

async fn create_merchant(setup: &Setup, n: usize) -> anyhow::Result<String> {
    let uid = format!("merchant-{n:05}");
    let app_id = setup
        .api
        .create_app_with(json!({ "name": format!("Merchant {n:05}"), "uid": uid }))
        .await
        .with_context(|| format!("creating application {uid}"))?;
    let index = u32::try_from(n).context("merchant index fits u32")?;
    setup.add_endpoint(&app_id, Some(index)).await?;
    Ok(app_id)
}
