//! CPU time over a measured window, from the kernel's counters: hookd's own (utime + stime of
//! its processes), the bench's own, PostgreSQL's when the run uses it, and everything else on
//! the machine. hookd's CPU time per delivery holds across noisy machines where deliveries/s do
//! not; the others' share says how noisy the machine was while the figures were taken.

use std::sync::OnceLock;

use anyhow::Context;

use crate::hookd::Hookd;
use crate::report::Figure;

/// Clock ticks per second of `/proc` counters when `getconf` cannot say (Linux's usual value).
const DEFAULT_CLOCK_TICKS: u64 = 100;

/// The counters at one instant, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuSample {
    /// All cores: every state (idle included), and the busy ones.
    machine_total: u64,
    machine_busy: u64,
    hookd: u64,
    bench: u64,
    /// Every process named `postgres`, when the run's database is PostgreSQL: the server is
    /// part of the measured system then (its other clients' work too, which cannot be told
    /// apart). `None` on SQLite, where a busy PostgreSQL is just another process.
    postgres: Option<u64>,
}

/// What a window cost: seconds of CPU, and shares of the whole machine (all cores = 100 %).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUse {
    pub hookd_s: f64,
    pub bench_s: f64,
    pub hookd_pct: f64,
    pub bench_pct: f64,
    /// PostgreSQL's share, on PostgreSQL runs.
    pub postgres_pct: Option<f64>,
    /// Busy time of every other process (and the kernel's own work for them).
    pub others_pct: f64,
}

impl CpuSample {
    /// Reads the machine's counters and those of hookd's processes, of this process and, when
    /// hookd runs on PostgreSQL, of the PostgreSQL server's.
    pub fn of(hookd: &Hookd) -> anyhow::Result<Self> {
        Self::now(&hookd.pids(), hookd.on_postgres())
    }

    fn now(hookd_pids: &[u32], with_postgres: bool) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let (machine_total, machine_busy) =
            parse_machine(&stat).context("no cpu line in /proc/stat")?;
        let hookd = hookd_pids
            .iter()
            .map(|pid| process_ticks(&pid.to_string()))
            .sum::<anyhow::Result<u64>>()?;
        Ok(Self {
            machine_total,
            machine_busy,
            hookd,
            bench: process_ticks("self")?,
            postgres: with_postgres.then(|| ticks_of_processes_named("postgres")),
        })
    }

    /// The use between this sample and a later one.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        let total = later.machine_total.saturating_sub(self.machine_total);
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let hookd = later.hookd.saturating_sub(self.hookd);
        let bench = later.bench.saturating_sub(self.bench);
        let postgres = match (self.postgres, later.postgres) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        // The machine's and the processes' counters tick separately: clamp at 0.
        let others = busy.saturating_sub(hookd + bench + postgres.unwrap_or(0));
        let share = |ticks: u64| match total {
            0 => f64::NAN,
            _ => 100.0 * ticks as f64 / total as f64,
        };
        let seconds = |ticks: u64| ticks as f64 / clock_ticks() as f64;
        CpuUse {
            hookd_s: seconds(hookd),
            bench_s: seconds(bench),
            hookd_pct: share(hookd),
            bench_pct: share(bench),
            postgres_pct: postgres.map(share),
            others_pct: share(others),
        }
    }
}

impl CpuUse {
    /// hookd's µs of CPU per delivered message, its share, the bench's and the others'.
    pub fn figures(&self, deliveries: u64) -> Vec<Figure> {
        let per_delivery = match deliveries {
            0 => f64::NAN,
            n => self.hookd_s * 1e6 / n as f64,
        };
        let mut figures = vec![
            Figure::new(
                "hookd_cpu_us_per_delivery",
                "hookd CPU/delivery",
                "µs",
                1,
                per_delivery,
            ),
            Figure::new(
                "hookd_cpu_pct",
                "hookd CPU",
                "% of all cores",
                1,
                self.hookd_pct,
            ),
            Figure::new(
                "bench_cpu_pct",
                "bench CPU",
                "% of all cores",
                1,
                self.bench_pct,
            ),
        ];
        if let Some(postgres_pct) = self.postgres_pct {
            figures.push(Figure::new(
                "postgres_cpu_pct",
                "PostgreSQL CPU",
                "% of all cores",
                1,
                postgres_pct,
            ));
        }
        figures.push(Figure::new(
            "others_cpu_pct",
            "other processes' CPU",
            "% of all cores",
            1,
            self.others_pct,
        ));
        figures
    }
}

/// (total, busy) ticks of the aggregate `cpu` line. Busy is everything but idle and iowait;
/// guest time is already inside user time, so the first eight fields are the total.
fn parse_machine(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total, total - idle))
}

/// utime + stime of `/proc/<pid>/stat` (all threads of the process).
fn process_ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_process(&stat).with_context(|| format!("no utime/stime in {path}"))
}

/// utime + stime of every process whose command name is `name`. Processes that end while
/// they are read are skipped.
fn ticks_of_processes_named(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| command_name(stat) == Some(name))
        .filter_map(|stat| parse_process(&stat))
        .sum()
}

/// Field 2 of `/proc/<pid>/stat`, without its parentheses.
fn command_name(stat: &str) -> Option<&str> {
    let start = stat.find('(')? + 1;
    let end = stat.rfind(')')?;
    stat.get(start..end)
}

fn parse_process(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its end.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`, read once.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(DEFAULT_CLOCK_TICKS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_machine_line() {
        let stat = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n";
        assert_eq!(parse_machine(stat), Some((980, 160)));
    }

    #[test]
    fn parses_a_process_with_an_odd_name() {
        let stat = "4242 (hookd (x) y) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16";
        assert_eq!(parse_process(stat), Some(333));
        assert_eq!(command_name(stat), Some("hookd (x) y"));
    }

    #[test]
    fn shares_of_a_window() {
        let before = CpuSample::default();
        let after = CpuSample {
            machine_total: 1000,
            machine_busy: 600,
            hookd: 300,
            bench: 200,
            postgres: None,
        };
        let used = before.until(&after);
        assert_eq!(
            (used.hookd_pct, used.bench_pct, used.others_pct),
            (30.0, 20.0, 10.0)
        );
        assert_eq!(used.postgres_pct, None);
        let with_postgres = CpuSample {
            postgres: Some(0),
            ..before
        }
        .until(&CpuSample {
            postgres: Some(50),
            ..after
        });
        assert_eq!(
            (with_postgres.postgres_pct, with_postgres.others_pct),
            (Some(5.0), 5.0)
        );
        assert!((used.hookd_s - 300.0 / clock_ticks() as f64).abs() < 1e-9);
        let per_delivery = used.figures(1000)[0].value;
        assert!((per_delivery - used.hookd_s * 1000.0).abs() < 1e-6);
    }

    #[test]
    fn reads_this_process() {
        let sample = CpuSample::now(&[std::process::id()], true).expect("/proc is readable");
        assert!(sample.machine_total >= sample.machine_busy);
        assert!(
            sample.bench >= sample.hookd,
            "this process is both, as seen apart"
        );
    }
}
