//! Soak: a long run at a steady offered rate with a receiver that fails some requests and one
//! endpoint that keeps going down and coming back. What it proves is flatness: hookd's RSS,
//! its open file descriptors and its pending deliveries sampled over the run stay level, and
//! nothing accepted is lost. Not in `all` and not in CI (it runs for half an hour by default).
//!
//! `--endpoints` applications with one endpoint each (`/hook/<n>`), the messages spread over
//! them, so each message is one delivery. The receiver answers `--failure-permille` of all
//! requests 500, and the last endpoint flaps: down (answering 503) for `--flap-period` seconds,
//! up as long, over and over. hookd runs with a short retry schedule so the failed attempts come
//! back within the run instead of hours later.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use tokio::task::JoinHandle;

use super::{health_figures, mib, paced_publish_to, PublishStats, Setup};
use crate::cpu::CpuSample;
use crate::hookd::{Hookd, HookdConfig};
use crate::receiver::{Outage, Receiver};
use crate::report::{Figure, Settings};

/// Lets hookd pick up the new endpoints before the first message.
const SETTLE: Duration = Duration::from_millis(500);
/// Samples before this are warm-up (caches, pools, the allocator settling): the trends are
/// taken from here on.
const WARM: Duration = Duration::from_secs(60);
/// Unless `--hookd-env` names one: failed attempts come back within seconds to a minute, so a
/// delivery that meets the flapping endpoint down is delivered during the run, and there are
/// enough of them (30, about half an hour) that a delivery is not exhausted by meeting the
/// endpoint down and the receiver's failures in every up period: a first soak with ten retries
/// lost one delivery of 1,800,000 that way.
const RETRY_SCHEDULE: &str = "1s,5s,10s,30s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,\
                              60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s,60s";

#[derive(Args, Clone, Debug)]
pub struct SoakArgs {
    /// Offered messages per second (each is one delivery).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Applications, one endpoint each; the messages are spread over them and the last flaps.
    #[arg(long, default_value_t = 10)]
    pub endpoints: u32,
    /// Length of the load, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub duration: u64,
    /// Per mille of the receiver's requests answered 500 (spread evenly over the run).
    #[arg(long, default_value_t = 50)]
    pub failure_permille: u64,
    /// The flapping endpoint is down this many seconds, then up as long, over and over.
    #[arg(long, default_value_t = 60)]
    pub flap_period: u64,
    /// Seconds between samples of RSS, descriptors and pending deliveries.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
    /// Longest wait, in seconds, for every delivery once the load ends (the flapping endpoint
    /// is brought back first); what is left then is missing and fails the run.
    #[arg(long, default_value_t = 600)]
    pub drain_timeout: u64,
    /// Where to write the samples as CSV.
    #[arg(long, default_value = "soak.csv")]
    pub series: PathBuf,
    /// Where to write the plot of RSS, descriptors and pending over time (SVG).
    #[arg(long, default_value = "soak.svg")]
    pub plot: PathBuf,
}

impl SoakArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("rate_per_s", self.rate.to_string()),
            ("duration_s", self.duration.to_string()),
            ("failure_permille", self.failure_permille.to_string()),
            ("flap_period_s", self.flap_period.to_string()),
            ("sample_every_s", self.sample_every.to_string()),
            ("endpoints", self.endpoints.to_string()),
        ]
    }

    /// hookd's settings for the soak: the short retry schedule unless one was given.
    pub fn hookd_config(&self, config: &HookdConfig) -> HookdConfig {
        let mut config = config.clone();
        if !config
            .extra_env
            .iter()
            .any(|(key, _)| key == "HOOKD_RETRY_SCHEDULE")
        {
            config
                .extra_env
                .push(("HOOKD_RETRY_SCHEDULE".to_owned(), RETRY_SCHEDULE.to_owned()));
        }
        config
    }
}

/// One sample of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub at_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub pending: f64,
    pub accepted: u64,
    pub delivered: u64,
}

pub async fn run_once(config: &HookdConfig, args: &SoakArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.rate > 0, "--rate must be positive");
    ensure!(args.duration > 0, "--duration must be positive");
    ensure!(args.sample_every > 0, "--sample-every must be positive");
    ensure!(args.flap_period > 0, "--flap-period must be positive");
    ensure!(
        args.endpoints >= 2,
        "--endpoints must be at least 2 (the last one flaps)"
    );
    let mut hookd = Hookd::start(&args.hookd_config(config)).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &SoakArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Arc::new(Setup::new(hookd, (args.rate / 10).max(8) as usize).await?);
    let mut apps = vec![setup.app_id.clone()];
    for _ in 1..args.endpoints {
        apps.push(setup.api.create_app().await?);
    }
    for (n, app_id) in (0..).zip(&apps) {
        setup.add_endpoint(app_id, Some(n)).await?;
    }
    let apps: Arc<[String]> = apps.into();
    let flapping = args.endpoints - 1;
    tokio::time::sleep(SETTLE).await;
    setup.receiver.set_failure_permille(args.failure_permille);

    let stats = Arc::new(PublishStats::default());
    let started = Instant::now();
    let cpu_before = CpuSample::of(hookd)?;
    let sampler = Sampler::start(hookd, &setup, &stats, args.sample_every, started);
    let flapper = Flapper::start(&setup, flapping, args.flap_period);
    let total = u64::from(args.rate) * args.duration;
    let offered = paced_publish_to(&setup, &stats, f64::from(args.rate), 0, total, &apps).await;
    let load_s = started.elapsed().as_secs_f64();
    stats.warn_if_failed("soak");
    flapper.stop().await;
    hookd.ensure_running()?;
    let at_end_of_load = sampler.latest();

    let expected = stats.accepted();
    let drained = wait_for(hookd, &setup.receiver, expected, args.drain_timeout).await?;
    let cpu = cpu_before.until(&CpuSample::of(hookd)?);
    let points = sampler.stop().await;
    write_series(&args.series, &points)?;
    write_plot(&args.plot, &points, load_s)?;
    eprintln!(
        "soak: {} samples written to {} and plotted in {}",
        points.len(),
        args.series.display(),
        args.plot.display()
    );

    let mut figures = vec![
        Figure::new("offered_per_s", "offered/s", "", 1, offered),
        Figure::new("load_s", "load", "s", 0, load_s),
        Figure::new(
            "drain_s",
            "drain after load",
            "s",
            1,
            drained.map_or(f64::NAN, |d| d.as_secs_f64()),
        ),
        Figure::new(
            "failed_on_purpose",
            "answered 500 on purpose",
            "",
            0,
            setup.receiver.failed_on_purpose() as f64,
        ),
        Figure::new(
            "attempts_while_down",
            "attempts while flapped down",
            "",
            0,
            setup.receiver.attempts_while_down() as f64,
        ),
    ];
    figures.extend(trend_figures(&points, at_end_of_load));
    figures.extend(cpu.figures(setup.receiver.unique()));
    figures.extend(health_figures(&stats, &setup.receiver, expected));
    Ok(figures)
}

/// Waits until the receiver has `target` distinct deliveries, up to `timeout_s`.
async fn wait_for(
    hookd: &mut Hookd,
    receiver: &Receiver,
    target: u64,
    timeout_s: u64,
) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(timeout_s) {
        if receiver.unique() >= target {
            return Ok(Some(start.elapsed()));
        }
        hookd.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// RSS, descriptors and pending deliveries: at the end of warm-up, at the end of the load,
/// the highest, and the slope of a least-squares line through the samples after warm-up (per
/// hour), which is what "flat" is judged by.
fn trend_figures(points: &[Point], at_end_of_load: Option<Point>) -> Vec<Figure> {
    let warm: Vec<&Point> = points
        .iter()
        .filter(|p| p.at_s >= WARM.as_secs_f64())
        .collect();
    let first_warm = warm.first().copied();
    let end = at_end_of_load.or_else(|| points.last().copied());
    let of = |p: Option<&Point>, f: fn(&Point) -> f64| p.map_or(f64::NAN, f);
    let rss = |p: &Point| mib(p.rss_kib);
    let fds = |p: &Point| p.fds as f64;
    let pending = |p: &Point| p.pending;
    let max = |f: fn(&Point) -> f64| points.iter().map(f).fold(f64::NAN, f64::max);
    let slope = |f: fn(&Point) -> f64| {
        let xy: Vec<(f64, f64)> = warm.iter().map(|p| (p.at_s / 3600.0, f(p))).collect();
        least_squares_slope(&xy)
    };
    vec![
        Figure::new(
            "rss_warm_mib",
            "RSS after warm-up",
            "MiB",
            1,
            of(first_warm, rss),
        ),
        Figure::new(
            "rss_end_mib",
            "RSS at end of load",
            "MiB",
            1,
            of(end.as_ref(), rss),
        ),
        Figure::new("rss_max_mib", "RSS max", "MiB", 1, max(rss)),
        Figure::new("rss_slope_mib_per_h", "RSS trend", "MiB/h", 2, slope(rss)),
        Figure::new(
            "fds_warm",
            "descriptors after warm-up",
            "",
            0,
            of(first_warm, fds),
        ),
        Figure::new(
            "fds_end",
            "descriptors at end of load",
            "",
            0,
            of(end.as_ref(), fds),
        ),
        Figure::new("fds_max", "descriptors max", "", 0, max(fds)),
        Figure::new(
            "pending_end",
            "pending at end of load",
            "",
            0,
            of(end.as_ref(), pending),
        ),
        Figure::new("pending_max", "pending max", "", 0, max(pending)),
        Figure::new(
            "pending_slope_per_h",
            "pending trend",
            "/h",
            1,
            slope(pending),
        ),
    ]
}

/// The slope of the least-squares line through `xy` (NaN with fewer than two distinct x).
pub fn least_squares_slope(xy: &[(f64, f64)]) -> f64 {
    let n = xy.len() as f64;
    let (sx, sy) = xy
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = xy.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    match den {
        d if d > 0.0 => num / d,
        _ => f64::NAN,
    }
}

/// Takes a [`Point`] every `every` seconds in the background.
struct Sampler {
    stop: Arc<AtomicBool>,
    points: Arc<std::sync::Mutex<Vec<Point>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    fn start(
        hookd: &Hookd,
        setup: &Arc<Setup>,
        stats: &Arc<PublishStats>,
        every: u64,
        started: Instant,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let points = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (pids, metrics_url) = (hookd.pids(), format!("{}/metrics", hookd.base_url()));
        let (flag, out, setup, stats) =
            (stop.clone(), points.clone(), setup.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ticker = tokio::time::interval(Duration::from_secs(every));
            while !flag.load(Ordering::Relaxed) {
                ticker.tick().await;
                let point = Point {
                    at_s: started.elapsed().as_secs_f64(),
                    rss_kib: pids
                        .iter()
                        .filter_map(|&p| crate::hookd::read_vm_rss(p).ok())
                        .sum(),
                    fds: pids.iter().map(|&p| open_fds(p)).sum(),
                    pending: pending_deliveries(&client, &metrics_url).await,
                    accepted: stats.accepted(),
                    delivered: setup.receiver.unique(),
                };
                out.lock().unwrap_or_else(|e| e.into_inner()).push(point);
            }
        });
        Self { stop, points, task }
    }

    fn latest(&self) -> Option<Point> {
        self.points
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .copied()
    }

    async fn stop(self) -> Vec<Point> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
        let _ = self.task.await;
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.clone()
    }
}

/// Open file descriptors of process `pid` (0 if it cannot be read).
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64)
}

/// hookd's `hookd_deliveries_pending` gauge from its `/metrics` (NaN if unreadable).
async fn pending_deliveries(client: &reqwest::Client, url: &str) -> f64 {
    let Ok(response) = client.get(url).send().await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    gauge(&text, "hookd_deliveries_pending").unwrap_or(f64::NAN)
}

/// The value of an unlabelled gauge in Prometheus text.
pub fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name)
                .then(|| value.trim().parse().ok())
                .flatten()
        })
}

/// Takes the flapping endpoint down and up, `period` seconds each, until stopped (it is left up).
struct Flapper {
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Flapper {
    fn start(setup: &Arc<Setup>, endpoint: u32, period: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, setup) = (stop.clone(), setup.clone());
        let task = tokio::spawn(async move {
            let mut down = true;
            while !flag.load(Ordering::Relaxed) {
                setup
                    .receiver
                    .set_outage(endpoint, down.then_some(Outage::Error));
                down = !down;
                tokio::time::sleep(Duration::from_secs(period)).await;
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
        let _ = self.task.await;
    }
}

fn write_series(path: &Path, points: &[Point]) -> anyhow::Result<()> {
    let mut csv = String::from("at_s,rss_kib,fds,pending,accepted,delivered\n");
    for p in points {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{}",
            p.at_s, p.rss_kib, p.fds, p.pending, p.accepted, p.delivered
        );
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

fn write_plot(path: &Path, points: &[Point], load_s: f64) -> anyhow::Result<()> {
    let series = |f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        points.iter().map(|p| (p.at_s / 60.0, f(p))).collect()
    };
    let panels = [
        Panel {
            title: "hookd RSS (MiB)",
            points: series(|p| mib(p.rss_kib)),
        },
        Panel {
            title: "open file descriptors",
            points: series(|p| p.fds as f64),
        },
        Panel {
            title: "pending deliveries",
            points: series(|p| p.pending),
        },
    ];
    std::fs::write(path, svg(&panels, load_s / 60.0))
        .with_context(|| format!("writing {}", path.display()))
}

/// One chart of the plot: a line over minutes.
pub struct Panel {
    pub title: &'static str,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const PANEL_HEIGHT: f64 = 150.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const PANEL_GAP: f64 = 50.0;

/// Stacked line charts sharing the time axis (minutes); a dashed line marks the end of load.
pub fn svg(panels: &[Panel], load_end_min: f64) -> String {
    let height = panels.len() as f64 * (PANEL_HEIGHT + PANEL_GAP) + 20.0;
    let x_max = panels
        .iter()
        .flat_map(|p| p.points.iter().map(|(x, _)| *x))
        .fold(load_end_min, f64::max)
        .max(1.0);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let x_of = |x: f64| MARGIN_LEFT + x / x_max * plot_w;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{:.1}\" y=\"14\" text-anchor=\"end\" fill=\"#666\">dashed: end of load</text>\n",
        WIDTH - MARGIN_RIGHT
    );
    for (i, panel) in panels.iter().enumerate() {
        let top = 30.0 + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let finite: Vec<(f64, f64)> = panel
            .points
            .iter()
            .copied()
            .filter(|(_, y)| y.is_finite())
            .collect();
        // From zero, so a flat line looks flat and a doubling looks like one.
        let y_max = finite.iter().map(|(_, y)| *y).fold(0.0, f64::max).max(1.0) * 1.1;
        let y_of = |y: f64| top + PANEL_HEIGHT - y / y_max * PANEL_HEIGHT;
        let bottom = top + PANEL_HEIGHT;
        let _ = write!(
            out,
            "<text x=\"{MARGIN_LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\n\
             <line x1=\"{MARGIN_LEFT}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"#333\"/>\n\
             <line x1=\"{MARGIN_LEFT}\" y1=\"{top:.1}\" x2=\"{MARGIN_LEFT}\" y2=\"{bottom:.1}\" stroke=\"#333\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{bottom:.1}\" text-anchor=\"end\">0</text>\n\
             <text x=\"{MARGIN_LEFT}\" y=\"{:.1}\">0 min</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} min</text>\n",
            top - 8.0,
            panel.title,
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            top + 10.0,
            axis_label(y_max),
            MARGIN_LEFT - 6.0,
            bottom + 15.0,
            WIDTH - MARGIN_RIGHT,
            bottom + 15.0,
            axis_label(x_max),
        );
        let end_x = x_of(load_end_min);
        let _ = writeln!(
            out,
            "<line x1=\"{end_x:.1}\" y1=\"{top:.1}\" x2=\"{end_x:.1}\" y2=\"{bottom:.1}\" \
             stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
        );
        let line: Vec<String> = finite
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The top of an axis, short: 1234567 → "1.2M", 45.3 → "45".
fn axis_label(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 10.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_has_no_slope_and_a_rising_one_does() {
        let flat: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 5.0)).collect();
        assert_eq!(least_squares_slope(&flat), 0.0);
        let rising: Vec<(f64, f64)> = (0..10)
            .map(|x| (f64::from(x), 2.0 * f64::from(x) + 1.0))
            .collect();
        assert!((least_squares_slope(&rising) - 2.0).abs() < 1e-9);
        assert!(least_squares_slope(&[(1.0, 1.0)]).is_nan());
    }

    #[test]
    fn gauges_are_read_from_prometheus_text() {
        let text = "# HELP hookd_deliveries_pending x\n# TYPE hookd_deliveries_pending gauge\n\
                    hookd_deliveries_pending 42\nhookd_deliveries_pending_other 7\n";
        assert_eq!(gauge(text, "hookd_deliveries_pending"), Some(42.0));
        assert_eq!(gauge(text, "missing"), None);
    }

    #[test]
    fn the_plot_has_one_line_per_panel() {
        let panel = |title| Panel {
            title,
            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN)],
        };
        let svg = svg(&[panel("a"), panel("b")], 1.5);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
