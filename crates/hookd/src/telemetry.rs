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

/// What became of one operational event: `committed` (stored as a message to the operator),
/// `dropped` (the queue was full) or `failed` (it could not be stored).
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

    /// An attempt's result recorded.
    pub fn attempt(&self, success: bool) {
        self.add(|m| {
            if success {
                m.delivered += 1;
            } else {
                m.failed += 1;
            }
        });
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
