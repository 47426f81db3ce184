//! hookd-bench: measures hookd end to end as BENCHMARKS.md ("Targets") defines it.
//!
//! Each run starts a fresh hookd child process (new temp database) and a
//! loopback receiver answering 204, publishes ~300-byte payment payloads
//! through the API and measures at the receiver.

mod api;
mod clock;
mod cpu;
mod hookd;
mod payload;
mod receiver;
mod report;
mod scenario;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use clap::{Args, Parser, Subcommand};

use crate::hookd::{parse_kib_field, HookdConfig};
use crate::report::{figures_line, medians, scenario_json, settings_line, Figure, Settings};
use crate::scenario::catchup::CatchupArgs;
use crate::scenario::dashboard::DashboardArgs;
use crate::scenario::fanout::FanoutArgs;
use crate::scenario::latency::LatencyArgs;
use crate::scenario::merchants::MerchantsArgs;
use crate::scenario::portal::PortalArgs;
use crate::scenario::soak::SoakArgs;
use crate::scenario::throughput::ThroughputArgs;
use crate::scenario::UNTRUSTWORTHY;

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
    /// A second hookd binary (e.g. built at the commit before) to compare with `--hookd-bin`:
    /// the runs alternate between the two (first, second, first, …), `--runs` each, so both see
    /// the same machine, and their medians are printed side by side.
    #[arg(long, global = true)]
    against: Option<PathBuf>,
    /// A hookd setting for every run, e.g. `--hookd-env HOOKD_ENDPOINT_MAX_IN_FLIGHT=4`
    /// (repeatable). The bench never passes its own environment's `HOOKD_*` on, so a setting
    /// is in force only when given here, and the settings line names it.
    #[arg(long = "hookd-env", global = true, value_parser = parse_env_setting)]
    hookd_env: Vec<(String, String)>,
}

/// `KEY=VALUE`, the key a `HOOKD_` setting.
fn parse_env_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if !key.starts_with("HOOKD_") {
        return Err(format!("`{key}` is not a hookd setting (HOOKD_…)"));
    }
    Ok((key.to_owned(), value.to_owned()))
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
    /// Latency at a fraction (80 %) of the sustained rate, measured first or given.
    LoadedLatency(LoadedLatencyArgs),
    /// An endpoint down while a backlog piles up, then back: drain rate, and a healthy
    /// endpoint's latency meanwhile.
    Catchup(CatchupArgs),
    /// Many applications with one endpoint each, messages spread over all of them.
    Merchants(MerchantsArgs),
    /// A few seconds of throughput and latency, one run each: fails only if the bench is
    /// broken (missing messages, bad signatures, failed publishes), never on speed.
    Smoke,
    /// Merchant portal pages with 100,000 delivered messages: p50/p95 per page (not in `all`).
    Portal(PortalArgs),
    /// Operator dashboard with 1,000,000 messages and 3,000,000 attempts loaded: p50/p95 per page.
    Dashboard(DashboardArgs),
    /// Half an hour at 1,000 msg/s with failing requests and a flapping endpoint: RSS,
    /// descriptors and pending stay flat, nothing is lost (not in `all`).
    Soak(SoakArgs),
}

#[derive(Args)]
struct LoadedLatencyArgs {
    /// The sustained deliveries/s to take `--fraction` of; without it, a throughput scenario
    /// (`--runs` runs of `--probe-duration` s) measures it first and its median is used.
    #[arg(long)]
    sustained: Option<f64>,
    /// Fraction of the sustained rate to offer.
    #[arg(long, default_value_t = 0.8)]
    fraction: f64,
    /// Measured window of the throughput runs that find the sustained rate, in seconds.
    #[arg(long, default_value_t = 10)]
    probe_duration: u64,
    /// Measured window of the latency runs, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Paced load before the latency runs' measured window, in seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
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
    // The smoke test proves the bench works; one run of each scenario does that.
    let runs = match cli.scenario {
        Scenario::Smoke => 1,
        _ => cli.common.runs,
    };
    ensure!(cli.common.nodes > 0, "--nodes must be at least 1");
    let config = HookdConfig {
        bin: cli.common.hookd_bin.clone(),
        database_url: cli.common.database_url.clone(),
        nodes: cli.common.nodes,
        log_filter: cli.common.hookd_log.clone(),
        extra_env: cli.common.hookd_env.clone(),
    };
    ensure!(
        config.nodes == 1 || config.database_kind().starts_with("postgres"),
        "--nodes above 1 needs a PostgreSQL --database-url: SQLite serves one node"
    );
    if !config.fresh_database_per_run() {
        eprintln!("note: --database-url is shared by all runs; runs are independent only if it is emptied between them");
    }
    let mut contenders = vec![Contender::new(config.clone())?];
    println!("machine: {}", settings_line(&contenders[0].machine));
    if let Some(against) = &cli.common.against {
        let second = Contender::new(HookdConfig {
            bin: against.clone(),
            ..config
        })?;
        println!("against: {}", settings_line(&second.machine));
        contenders.push(second);
        // Two builds of one commit (say, before and after a local change) need other names.
        if contenders[0].label == contenders[1].label {
            for contender in &mut contenders {
                contender.label = contender.config.bin.display().to_string();
            }
        }
    }
    let bench = Bench { contenders, runs };
    match cli.scenario {
        Scenario::Throughput(args) => bench.throughput(&args).await.map(drop),
        Scenario::Latency(args) => bench.latency(&args).await,
        Scenario::Fanout(args) => bench.fanout(&args).await,
        Scenario::All(all) => bench.all(&all).await,
        Scenario::LoadedLatency(args) => bench.loaded_latency(&args).await,
        Scenario::Catchup(args) => bench.catchup(&args).await,
        Scenario::Merchants(args) => bench.merchants(&args).await,
        Scenario::Smoke => bench.smoke().await,
        Scenario::Portal(args) => bench.portal(&args).await,
        Scenario::Dashboard(args) => bench.dashboard(&args).await,
        Scenario::Soak(args) => bench.soak(&args).await,
    }
}

struct Bench {
    /// The hookd binary measured, and the one it is compared with (`--against`), if any.
    contenders: Vec<Contender>,
    runs: usize,
}

/// One hookd binary and the facts its figures depend on.
struct Contender {
    config: HookdConfig,
    machine: Settings,
    /// Names its runs: the commit `hookd --version` gives, else the binary's path.
    label: String,
}

impl Contender {
    fn new(config: HookdConfig) -> anyhow::Result<Self> {
        let machine = machine_facts(&config)?;
        let commit = commit_of(&config.version()?);
        let label = match commit.as_str() {
            "unknown" => config.bin.display().to_string(),
            _ => commit,
        };
        Ok(Self {
            config,
            machine,
            label,
        })
    }
}

impl Bench {
    async fn throughput(&self, args: &ThroughputArgs) -> anyhow::Result<Vec<Figure>> {
        self.scenario("throughput", args.settings(), |c| {
            scenario::throughput::run_once(self.config(c), args)
        })
        .await
    }

    async fn latency(&self, args: &LatencyArgs) -> anyhow::Result<()> {
        self.scenario("latency", args.settings(), |c| {
            scenario::latency::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    async fn fanout(&self, args: &FanoutArgs) -> anyhow::Result<()> {
        self.scenario("fanout", args.settings(), |c| {
            scenario::fanout::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    async fn loaded_latency(&self, args: &LoadedLatencyArgs) -> anyhow::Result<()> {
        ensure!(
            args.fraction > 0.0 && args.fraction <= 1.0,
            "--fraction must be in (0, 1]"
        );
        let (sustained, source) = match args.sustained {
            Some(given) => (given, "given"),
            None => (self.sustained_rate(args.probe_duration).await?, "measured"),
        };
        let rate = (sustained * args.fraction).round();
        ensure!(
            rate >= 1.0,
            "{} % of {sustained:.1}/s is below one message per second",
            args.fraction * 100.0
        );
        let latency = LatencyArgs {
            rate: rate as u32,
            duration: args.duration,
            warmup: args.warmup,
        };
        let mut settings = latency.settings();
        settings.push(("sustained_per_s", format!("{sustained:.1}")));
        settings.push(("sustained_source", source.to_owned()));
        settings.push(("fraction", args.fraction.to_string()));
        self.scenario("loaded-latency", settings, |c| {
            scenario::latency::run_once(self.config(c), &latency)
        })
        .await
        .map(drop)
    }

    /// The median deliveries/s of a throughput scenario with its default load.
    async fn sustained_rate(&self, duration: u64) -> anyhow::Result<f64> {
        let probe = ThroughputArgs {
            duration,
            ..ThroughputArgs::default()
        };
        let medians = self.throughput(&probe).await?;
        let sustained = medians
            .iter()
            .find(|f| f.key == "deliveries_per_s")
            .map(|f| f.value)
            .filter(|v| v.is_finite() && *v > 0.0)
            .context("the throughput runs measured no sustained rate")?;
        Ok(sustained)
    }

    async fn catchup(&self, args: &CatchupArgs) -> anyhow::Result<()> {
        self.scenario("catchup", args.settings(), |c| {
            scenario::catchup::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    async fn merchants(&self, args: &MerchantsArgs) -> anyhow::Result<()> {
        self.scenario("merchants", args.settings(), |c| {
            scenario::merchants::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    /// A few seconds of throughput, then of latency: proves the bench still works end to end
    /// (every message delivered once at least, every signature good, every publish accepted).
    /// Asserts no speed: it runs against debug builds on busy CI machines.
    async fn smoke(&self) -> anyhow::Result<()> {
        let throughput = ThroughputArgs {
            publishers: 16,
            duration: 2,
            warmup: 1,
            dead_backlog: 0,
        };
        let latency = LatencyArgs {
            rate: 200,
            duration: 2,
            warmup: 1,
        };
        self.throughput(&throughput).await?;
        self.latency(&latency).await?;
        println!("smoke: the bench works (no speed asserted)");
        Ok(())
    }

    async fn portal(&self, args: &PortalArgs) -> anyhow::Result<()> {
        self.scenario("portal", args.settings(), |c| {
            scenario::portal::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    async fn dashboard(&self, args: &DashboardArgs) -> anyhow::Result<()> {
        ensure!(
            self.config(0).nodes == 1,
            "the dashboard scenario runs one node"
        );
        self.scenario("dashboard", args.settings(), |c| {
            scenario::dashboard::run_once(self.config(c), args)
        })
        .await
        .map(drop)
    }

    async fn soak(&self, args: &SoakArgs) -> anyhow::Result<()> {
        let mut settings = args.settings();
        let soaked = args.hookd_config(self.config(0));
        if let Some((_, schedule)) = soaked
            .extra_env
            .iter()
            .find(|(key, _)| key == "HOOKD_RETRY_SCHEDULE")
        {
            settings.push(("retry_schedule", schedule.clone()));
        }
        self.scenario("soak", settings, |c| {
            scenario::soak::run_once(self.config(c), args)
        })
        .await
        .map(drop)
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

    fn config(&self, contender: usize) -> &HookdConfig {
        &self.contenders[contender].config
    }

    /// Runs one scenario `self.runs` times per contender, alternating between them, printing
    /// each run and the medians (side by side when there are two); answers the first
    /// contender's medians. A run whose figures cannot be trusted (see [`verdict`]) fails the
    /// scenario.
    async fn scenario<F, Fut>(
        &self,
        name: &str,
        mut settings: Settings,
        mut run_once: F,
    ) -> anyhow::Result<Vec<Figure>>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = anyhow::Result<Vec<Figure>>>,
    {
        let config = self.config(0);
        settings.push(("database", config.database_kind()));
        settings.push(("nodes", config.nodes.to_string()));
        let fresh = config.fresh_database_per_run();
        settings.push(("fresh_database_per_run", fresh.to_string()));
        if !config.extra_env.is_empty() {
            let env: Vec<String> = config
                .extra_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            settings.push(("hookd_env", env.join(" ")));
        }
        let compared = self.contenders.len() > 1;
        let mut runs: Vec<Vec<Vec<Figure>>> = vec![Vec::new(); self.contenders.len()];
        for i in 1..=self.runs {
            for (c, contender) in self.contenders.iter().enumerate() {
                let tag = match compared {
                    true => format!("[{name} run {i}/{} {}]", self.runs, contender.label),
                    false => format!("[{name} run {i}/{}]", self.runs),
                };
                println!("{tag} settings: {}", settings_line(&settings));
                let figures = run_once(c)
                    .await
                    .with_context(|| format!("{name} run {i} of {} failed", contender.label))?;
                println!("{tag} results: {}", figures_line(&figures));
                if let Some(broken) = verdict(&figures) {
                    bail!("{name} run {i} of {} failed its checks (its figures cannot be trusted): {broken}", contender.label);
                }
                runs[c].push(figures);
            }
        }
        let medians: Vec<Vec<Figure>> = runs.iter().map(|r| medians(r)).collect();
        for (c, contender) in self.contenders.iter().enumerate() {
            let tag = match compared {
                true => format!("[{name} median of {} {}]", self.runs, contender.label),
                false => format!("[{name} median of {}]", self.runs),
            };
            println!("{tag} {}", figures_line(&medians[c]));
            println!(
                "{}",
                scenario_json(name, &contender.machine, &settings, &runs[c])?
            );
        }
        if compared {
            println!(
                "[{name} side by side, {} | {}] {}",
                self.contenders[0].label,
                self.contenders[1].label,
                side_by_side(&medians[0], &medians[1])
            );
        }
        Ok(medians.into_iter().next().unwrap_or_default())
    }
}

/// Each figure of `first` beside the same figure of `second`, with the change in percent.
fn side_by_side(first: &[Figure], second: &[Figure]) -> String {
    first
        .iter()
        .filter_map(|a| {
            let b = second.iter().find(|b| b.key == a.key)?;
            let change = match a.value {
                v if v == 0.0 || !v.is_finite() || !b.value.is_finite() => String::new(),
                v => format!(" ({:+.1} %)", (b.value - v) / v * 100.0),
            };
            Some(format!(
                "{} {:.*} | {:.*}{change}",
                a.label, a.decimals, a.value, a.decimals, b.value
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What makes a run's figures worthless, if anything: the [`UNTRUSTWORTHY`] figures above
/// zero, named with their counts (e.g. "missing 3, bad_signatures 1").
fn verdict(figures: &[Figure]) -> Option<String> {
    let broken: Vec<String> = figures
        .iter()
        .filter(|f| UNTRUSTWORTHY.contains(&f.key) && f.value > 0.0)
        .map(|f| format!("{} {}", f.key, f.value))
        .collect();
    (!broken.is_empty()).then(|| broken.join(", "))
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
        ("hookd_commit", commit_of(&version)),
        ("hookd_version", version),
        ("hookd_bin", config.bin.display().to_string()),
        ("database", config.database_kind()),
        ("command", command_line()),
    ])
}

/// The commit `hookd --version` names ("0.1.0 (commit 1cf838a0be12, built …)").
fn commit_of(version: &str) -> String {
    version
        .split_once("commit ")
        .and_then(|(_, rest)| rest.split([',', ')']).next())
        .map_or_else(|| "unknown".to_owned(), |commit| commit.trim().to_owned())
}

/// This invocation, as it could be typed again (arguments with spaces quoted).
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("'{arg}'")
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_from_version() {
        assert_eq!(
            commit_of("0.1.0 (commit 1cf838a0be12, built 2026-12-06)"),
            "1cf838a0be12"
        );
        assert_eq!(commit_of("hookd 0.1.0"), "unknown");
    }

    #[test]
    fn untrustworthy_runs_are_named() {
        let fine = vec![
            Figure::new("missing", "missing", "", 0, 0.0),
            Figure::new("duplicates", "duplicates", "", 0, 4.0),
        ];
        assert_eq!(verdict(&fine), None);
        let broken = vec![
            Figure::new("missing", "missing", "", 0, 3.0),
            Figure::new("bad_signatures", "bad signatures", "", 0, 1.0),
            Figure::new("publish_failed", "publish failed", "", 0, 0.0),
        ];
        assert_eq!(
            verdict(&broken).as_deref(),
            Some("missing 3, bad_signatures 1")
        );
    }

    #[test]
    fn hookd_settings_from_the_command_line() {
        assert_eq!(
            parse_env_setting("HOOKD_RETRY_SCHEDULE=1s,5s"),
            Ok(("HOOKD_RETRY_SCHEDULE".to_owned(), "1s,5s".to_owned()))
        );
        assert!(parse_env_setting("PATH=/tmp").is_err());
        assert!(parse_env_setting("HOOKD_LOG").is_err());
    }

    #[test]
    fn medians_side_by_side() {
        let first = vec![
            Figure::new("deliveries_per_s", "deliveries/s", "", 1, 5000.0),
            Figure::new("missing", "missing", "", 0, 0.0),
        ];
        let second = vec![
            Figure::new("deliveries_per_s", "deliveries/s", "", 1, 5500.0),
            Figure::new("missing", "missing", "", 0, 0.0),
        ];
        assert_eq!(
            side_by_side(&first, &second),
            "deliveries/s 5000.0 | 5500.0 (+10.0 %), missing 0 | 0"
        );
    }
}
