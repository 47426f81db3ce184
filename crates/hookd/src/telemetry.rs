//! Logs, traces and metrics.
//!
//! Logs go to standard error (text or JSON); with the `otel` cargo feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP/HTTP. Metrics are
//! Prometheus; their labels are of low cardinality: outcomes and route templates, never URLs,
//! ids or tokens.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) const MESSAGES_INGESTED: &str = "hookd_messages_ingested_total";
pub(crate) const ATTEMPTS: &str = "hookd_attempts_total";
pub(crate) const ATTEMPT_DURATION: &str = "hookd_attempt_duration_seconds";
pub(crate) const DELIVERY_LATENCY: &str = "hookd_delivery_latency_seconds";
pub(crate) const DELIVERIES_PENDING: &str = "hookd_deliveries_pending";
pub(crate) const OLDEST_PENDING_AGE: &str = "hookd_oldest_pending_age_seconds";
pub(crate) const ENDPOINTS_DISABLED: &str = "hookd_endpoints_disabled";
pub(crate) const CLAIM_DURATION: &str = "hookd_claim_duration_seconds";
pub(crate) const COMMIT_DURATION: &str = "hookd_commit_duration_seconds";
pub(crate) const HTTP_REQUESTS: &str = "hookd_http_requests_total";
pub(crate) const OPERATIONAL_EVENTS: &str = "hookd_operational_events_total";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What kind of series a metric is, as Prometheus sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Exported as `<name>_bucket{le}`, `<name>_sum` and `<name>_count`.
    Histogram,
}

/// One metric hookd exports.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    /// The labels hookd gives it (Prometheus adds `job` and `instance`).
    pub labels: &'static [&'static str],
}

/// Every metric hookd exports, so that dashboards and alert rules can be checked against the
/// names the code records (`crates/hookd-cli/tests/monitoring.rs`); a test below checks this
/// list against what the recorder renders.
pub const METRICS: &[Metric] = &[
    metric(MESSAGES_INGESTED, MetricKind::Counter, &[]),
    metric(ATTEMPTS, MetricKind::Counter, &["outcome"]),
    metric(ATTEMPT_DURATION, MetricKind::Histogram, &[]),
    metric(DELIVERY_LATENCY, MetricKind::Histogram, &[]),
    metric(DELIVERIES_PENDING, MetricKind::Gauge, &[]),
    metric(OLDEST_PENDING_AGE, MetricKind::Gauge, &[]),
    metric(ENDPOINTS_DISABLED, MetricKind::Gauge, &[]),
    metric(CLAIM_DURATION, MetricKind::Histogram, &[]),
    metric(COMMIT_DURATION, MetricKind::Histogram, &["what"]),
    metric(
        HTTP_REQUESTS,
        MetricKind::Counter,
        &["method", "route", "status"],
    ),
    metric(OPERATIONAL_EVENTS, MetricKind::Counter, &["outcome"]),
];

const fn metric(name: &'static str, kind: MetricKind, labels: &'static [&'static str]) -> Metric {
    Metric { name, kind, labels }
}

/// Installs the process's log (and, with the `otel` feature, trace) subscriber.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(otel::layer())
        .with(filter)
        .with(fmt)
        .init();
}

/// Sends the traces still buffered (a no-op without the `otel` feature).
pub fn flush_traces() {
    otel::flush();
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// An OTLP layer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub fn layer() -> Option<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> {
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(err) => {
                eprintln!("OpenTelemetry export is off: {err}");
                return None;
            }
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("hookd")
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("hookd");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    }

    pub fn flush() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}

#[cfg(not(feature = "otel"))]
mod otel {
    /// Without the `otel` feature there is no trace export.
    pub fn layer() -> Option<tracing_subscriber::layer::Identity> {
        None
    }

    pub fn flush() {}
}

/// The process's metrics recorder, installed on first use.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .expect("bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // A second recorder (another server in the same test process) is not an error: the
        // first keeps recording for everyone.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// How an attempt ended, as a metric label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttemptOutcome {
    Success,
    HttpError,
    Timeout,
    Unreachable,
    Blocked,
}

impl AttemptOutcome {
    fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::HttpError => "http_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Unreachable => "unreachable",
            AttemptOutcome::Blocked => "blocked",
        }
    }
}

pub(crate) fn message_ingested() {
    counter!(MESSAGES_INGESTED).increment(1);
}

/// One finished attempt; `latency` is from ingest to this success, when it succeeded.
pub(crate) fn attempt_finished(
    outcome: AttemptOutcome,
    duration: Duration,
    latency: Option<Duration>,
) {
    counter!(ATTEMPTS, "outcome" => outcome.label()).increment(1);
    histogram!(ATTEMPT_DURATION).record(duration.as_secs_f64());
    if let Some(latency) = latency {
        histogram!(DELIVERY_LATENCY).record(latency.as_secs_f64());
    }
}

/// What became of operational events: `committed` (an outbox row published as a message to the
/// operator), or `failed` (a publishing round that failed and is retried, or an unreadable row).
pub(crate) fn operational_event(outcome: &'static str) {
    counter!(OPERATIONAL_EVENTS, "outcome" => outcome).increment(1);
}

pub fn claimed(duration: Duration) {
    histogram!(CLAIM_DURATION).record(duration.as_secs_f64());
}

/// A write that carried deliveries or results: `what` is `ingest` or `results`.
pub fn committed(what: &'static str, duration: Duration) {
    histogram!(COMMIT_DURATION, "what" => what).record(duration.as_secs_f64());
}

pub fn backlog(pending: u64, oldest_age: Duration, endpoints_disabled: u64) {
    gauge!(DELIVERIES_PENDING).set(pending as f64);
    gauge!(OLDEST_PENDING_AGE).set(oldest_age.as_secs_f64());
    gauge!(ENDPOINTS_DISABLED).set(endpoints_disabled as f64);
}

/// One API request, labelled by its route template (e.g. `/api/v1/app/{app_id}`).
pub(crate) fn http_request(method: &str, route: &str, status: u16) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!(HTTP_REQUESTS, "method" => method.to_string(), "route" => route.to_string(), "status" => class)
        .increment(1);
}

/// This node's traffic since it last reported it, for the operator dashboard's per-minute
/// charts: counted here as it happens, added to the store's per-minute rows every few seconds
/// by the server ([`Traffic::take`]). One per server, not a global, so that servers sharing a
/// process (tests) count apart.
#[derive(Debug, Default)]
pub struct Traffic {
    /// (minute, messages in, delivered, failed) of the minutes not yet reported.
    minutes: std::sync::Mutex<Vec<crate::store::TrafficMinute>>,
}

impl Traffic {
    fn add(&self, change: impl FnOnce(&mut crate::store::TrafficMinute)) {
        let minute = crate::store::dashboard::minute_of(crate::domain::time::now_millis());
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        match minutes.last_mut() {
            Some(last) if last.minute == minute => change(last),
            _ => {
                let mut fresh = crate::store::TrafficMinute {
                    minute,
                    ..Default::default()
                };
                change(&mut fresh);
                minutes.push(fresh);
            }
        }
    }

    /// A message committed.
    pub fn message_in(&self) {
        self.add(|m| m.messages_in += 1);
    }

    /// A batch of attempt results recorded: one lock per batch, not per attempt.
    pub fn attempts(&self, delivered: u64, failed: u64) {
        if delivered + failed > 0 {
            self.add(|m| {
                m.delivered += delivered;
                m.failed += failed;
            });
        }
    }

    /// What was counted since the last call; the counts start again from zero.
    pub fn take(&self) -> Vec<crate::store::TrafficMinute> {
        std::mem::take(&mut *self.minutes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back counts that could not be stored, to be tried with the next report.
    pub fn restore(&self, mut unsent: Vec<crate::store::TrafficMinute>) {
        let mut minutes = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        unsent.append(&mut minutes);
        *minutes = unsent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each metric once and reads the rendered exposition back: every series is in
    /// `METRICS` with its kind and labels, and every entry of `METRICS` is rendered.
    #[test]
    fn the_list_of_metrics_is_what_the_recorder_exports() {
        let handle = prometheus();
        message_ingested();
        attempt_finished(
            AttemptOutcome::Success,
            Duration::from_millis(3),
            Some(Duration::from_millis(5)),
        );
        operational_event("committed");
        claimed(Duration::from_millis(1));
        committed("ingest", Duration::from_millis(1));
        backlog(1, Duration::from_secs(1), 0);
        http_request("GET", "/api/v1/health", 204);
        let text = handle.render();

        let mut seen = std::collections::BTreeSet::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let series = line.split(' ').next().unwrap_or_default();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let (metric, suffix) = METRICS
                .iter()
                .find_map(|m| Some((m, name.strip_prefix(m.name)?)))
                .unwrap_or_else(|| panic!("{name} is exported but not in METRICS"));
            let expected: &[&str] = match metric.kind {
                MetricKind::Histogram => &["_bucket", "_sum", "_count"],
                MetricKind::Counter | MetricKind::Gauge => &[""],
            };
            assert!(
                expected.contains(&suffix),
                "{name}: not a {:?}",
                metric.kind
            );
            let mut names: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|label| label.split('=').next())
                .filter(|label| !label.is_empty())
                // A histogram's bucket bound.
                .filter(|label| !(*label == "le" && suffix == "_bucket"))
                .collect();
            names.sort_unstable();
            let mut listed = metric.labels.to_vec();
            listed.sort_unstable();
            assert_eq!(names, listed, "the labels of {name}");
            seen.insert(metric.name);
        }
        for metric in METRICS {
            assert!(
                seen.contains(metric.name),
                "{} is never exported",
                metric.name
            );
        }
    }
}
