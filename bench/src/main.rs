//! hookd-bench: measures hookd end to end as BENCHMARKS.md ("Targets") defines it.
//!
//! Each run starts a fresh hookd child process (new temp database) and a
//! loopback receiver answering 204, publishes ~300-byte payment payloads
//! through the API and measures at the receiver.

mod api;
mod clock;
mod hookd;
mod payload;
mod receiver;
mod report;
mod scenario;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{ensure, Context};
use clap::{Args, Parser, Subcommand};

use crate::hookd::{parse_kib_field, HookdConfig};
use crate::report::{figures_line, medians, scenario_json, settings_line, Figure, Settings};
use crate::scenario::dashboard::DashboardArgs;
use crate::scenario::fanout::FanoutArgs;
use crate::scenario::latency::LatencyArgs;
use crate::scenario::portal::PortalArgs;
use crate::scenario::throughput::ThroughputArgs;

#[derive(Parser)]
#[command(
    name = "hookd-bench",
    version,
    about = "End-to-end benchmark of hookd (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args)]
struct CommonArgs {
    /// The hookd binary to run as `hookd serve`.
    #[arg(
        long,
        global = true,
        env = "HOOKD_BENCH_BIN",
        default_value = "target/release/hookd"
    )]
    hookd_bin: PathBuf,
    /// Database for hookd; default: a fresh SQLite file per run. With a PostgreSQL URL
    /// (e.g. postgres://postgres@127.0.0.1/postgres) each run creates and drops a database of
    /// its own on that server.
    #[arg(long, global = true, env = "HOOKD_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// hookd nodes per run on the same database, publishers spread over them (PostgreSQL).
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    /// hookd's log filter (`HOOKD_LOG`); raise it to diagnose a failing run.
    #[arg(long, global = true, default_value = "warn")]
    hookd_log: String,
    /// Independent runs per scenario; figures are reported as medians.
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
}

#[derive(Subcommand)]
enum Scenario {
    /// Sustained deliveries/s with concurrent closed-loop publishers.
    Throughput(ThroughputArgs),
    /// Ingest → delivery latency at a paced offered rate.
    Latency(LatencyArgs),
    /// One message to many endpoints: time until the last delivery.
    Fanout(FanoutArgs),
    /// All three scenarios with their default settings.
    All(AllArgs),
    /// Merchant portal pages with 100,000 delivered messages: p50/p95 per page (not in `all`).
    Portal(PortalArgs),
    /// Operator dashboard with 1,000,000 messages and 3,000,000 attempts loaded: p50/p95 per page.
    Dashboard(DashboardArgs),
}

#[derive(Args)]
struct AllArgs {
    /// Overrides the measured window of throughput and latency, in seconds.
    #[arg(long)]
    duration: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain says what went wrong; a backtrace of the bench
            // (printed by anyhow when RUST_BACKTRACE is set) does not.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    ensure!(cli.common.runs > 0, "--runs must be at least 1");
    ensure!(cli.common.nodes > 0, "--nodes must be at least 1");
    let config = HookdConfig {
        bin: cli.common.hookd_bin.clone(),
        database_url: cli.common.database_url.clone(),
        nodes: cli.common.nodes,
        log_filter: cli.common.hookd_log.clone(),
    };
    ensure!(
        config.nodes == 1 || config.database_kind().starts_with("postgres"),
        "--nodes above 1 needs a PostgreSQL --database-url: SQLite serves one node"
    );
    let machine = machine_facts(&config)?;
    println!("machine: {}", settings_line(&machine));
    if !config.fresh_database_per_run() {
        eprintln!("note: --database-url is shared by all runs; runs are independent only if it is emptied between them");
    }
    let bench = Bench {
        config,
        machine,
        runs: cli.common.runs,
    };
    match cli.scenario {
        Scenario::Throughput(args) => bench.throughput(&args).await,
        Scenario::Latency(args) => bench.latency(&args).await,
        Scenario::Fanout(args) => bench.fanout(&args).await,
        Scenario::All(all) => bench.all(&all).await,
        Scenario::Portal(args) => bench.portal(&args).await,
        Scenario::Dashboard(args) => bench.dashboard(&args).await,
    }
}

struct Bench {
    config: HookdConfig,
    machine: Settings,
    runs: usize,
}

impl Bench {
    async fn throughput(&self, args: &ThroughputArgs) -> anyhow::Result<()> {
        self.scenario("throughput", args.settings(), || {
            scenario::throughput::run_once(&self.config, args)
        })
        .await
    }

    async fn latency(&self, args: &LatencyArgs) -> anyhow::Result<()> {
        self.scenario("latency", args.settings(), || {
            scenario::latency::run_once(&self.config, args)
        })
        .await
    }

    async fn fanout(&self, args: &FanoutArgs) -> anyhow::Result<()> {
        self.scenario("fanout", args.settings(), || {
            scenario::fanout::run_once(&self.config, args)
        })
        .await
    }

    async fn portal(&self, args: &PortalArgs) -> anyhow::Result<()> {
        self.scenario("portal", args.settings(), || {
            scenario::portal::run_once(&self.config, args)
        })
        .await
    }

    async fn dashboard(&self, args: &DashboardArgs) -> anyhow::Result<()> {
        ensure!(
            self.config.nodes == 1,
            "the dashboard scenario runs one node"
        );
        self.scenario("dashboard", args.settings(), || {
            scenario::dashboard::run_once(&self.config, args)
        })
        .await
    }

    async fn all(&self, all: &AllArgs) -> anyhow::Result<()> {
        let mut throughput = ThroughputArgs::default();
        let mut latency = LatencyArgs::default();
        if let Some(duration) = all.duration {
            throughput.duration = duration;
            latency.duration = duration;
        }
        self.throughput(&throughput).await?;
        self.latency(&latency).await?;
        self.fanout(&FanoutArgs::default()).await
    }

    /// Runs one scenario `self.runs` times, printing each run and the medians.
    async fn scenario<F, Fut>(
        &self,
        name: &str,
        mut settings: Settings,
        mut run_once: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Vec<Figure>>>,
    {
        settings.push(("database", self.config.database_kind()));
        settings.push(("nodes", self.config.nodes.to_string()));
        let fresh = self.config.fresh_database_per_run();
        settings.push(("fresh_database_per_run", fresh.to_string()));
        let mut runs = Vec::with_capacity(self.runs);
        for i in 1..=self.runs {
            println!(
                "[{name} run {i}/{}] settings: {}",
                self.runs,
                settings_line(&settings)
            );
            let figures = run_once()
                .await
                .with_context(|| format!("{name} run {i} failed"))?;
            println!(
                "[{name} run {i}/{}] results: {}",
                self.runs,
                figures_line(&figures)
            );
            runs.push(figures);
        }
        println!(
            "[{name} median of {}] {}",
            self.runs,
            figures_line(&medians(&runs))
        );
        println!("{}", scenario_json(name, &self.machine, &settings, &runs)?);
        Ok(())
    }
}

/// What the figures depend on besides hookd itself.
fn machine_facts(config: &HookdConfig) -> anyhow::Result<Settings> {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total = parse_kib_field(&meminfo, "MemTotal:").map_or_else(
        || "unknown".to_owned(),
        |kib| format!("{:.1}GiB", kib as f64 / 1024.0 / 1024.0),
    );
    let version = config.version().context(
        "the hookd binary does not run; build it with `cargo build --release -p hookd-cli`",
    )?;
    Ok(vec![
        ("nproc", nproc.to_string()),
        ("mem_total", mem_total),
        ("cpu", cpu_model()),
        ("hookd_version", version),
        ("hookd_bin", config.bin.display().to_string()),
        ("database", config.database_kind()),
    ])
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(
            || "unknown".to_owned(),
            |(_, model)| model.trim().to_owned(),
        )
}
