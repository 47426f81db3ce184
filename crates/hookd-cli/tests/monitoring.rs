//! The Grafana dashboard and the Prometheus alert rules query only metrics hookd exports
//! (`hookd::telemetry::METRICS`), with their real kinds and labels.

use std::collections::BTreeSet;
use std::path::Path;

use hookd::telemetry::{MetricKind, METRICS};

/// Labels Prometheus adds to every series, and the bucket bound of histograms.
const SCRAPE_LABELS: &[&str] = &["job", "instance", "le"];

fn packaging(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every problem with the metric names and labels that `text` (PromQL, or text holding it)
/// uses; `uses` collects the metrics it names.
fn check_promql(text: &str, uses: &mut BTreeSet<&'static str>) -> Vec<String> {
    let mut problems = Vec::new();
    let all_labels: BTreeSet<&str> = METRICS
        .iter()
        .flat_map(|m| m.labels.iter().copied())
        .chain(SCRAPE_LABELS.iter().copied())
        .collect();
    let bytes = text.as_bytes();
    let word = |at: usize| {
        let end = text[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| at + n);
        &text[at..end]
    };
    let mut at = 0;
    while let Some(found) = text[at..].find("hookd_") {
        let start = at + found;
        at = start + 1;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if preceded {
            continue;
        }
        let name = word(start);
        let Some((metric, suffix)) = METRICS
            .iter()
            .filter_map(|m| Some((m, name.strip_prefix(m.name)?)))
            .min_by_key(|(_, suffix)| suffix.len())
        else {
            problems.push(format!("{name} is not a metric hookd exports"));
            continue;
        };
        let allowed: &[&str] = match metric.kind {
            MetricKind::Histogram => &["_bucket", "_sum", "_count"],
            MetricKind::Counter | MetricKind::Gauge => &[""],
        };
        if !allowed.contains(&suffix) {
            problems.push(format!("{name}: {} is a {:?}", metric.name, metric.kind));
        }
        uses.insert(metric.name);
        // The selector's label names, e.g. {job=~"$job", outcome!="success"}.
        let after = start + name.len();
        if text[after..].starts_with('{') {
            let selector = &text[after + 1..after + text[after..].find('}').unwrap_or(0)];
            for matcher in selector.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let label = matcher
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default();
                let known = metric.labels.contains(&label)
                    || SCRAPE_LABELS.contains(&label) && (label != "le" || suffix == "_bucket");
                if !known {
                    problems.push(format!("{name} has no label {label:?}"));
                }
            }
        }
    }
    // Grouping labels: by (…), without (…), on (…), ignoring (…).
    for keyword in ["by (", "without (", "on (", "ignoring ("] {
        for (found, _) in text.match_indices(keyword) {
            let open = found + keyword.len();
            let close = text[open..].find(')').map_or(open, |n| open + n);
            for label in text[open..close]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                if !all_labels.contains(label) {
                    problems.push(format!(
                        "{keyword}{label}): no metric of hookd has that label"
                    ));
                }
            }
        }
    }
    problems
}

/// Every string in a JSON document.
fn strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_queries_only_metrics_hookd_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&packaging("grafana/hookd-dashboard.json")).expect("valid JSON");
    let mut texts = Vec::new();
    strings(&dashboard, &mut texts);
    let mut uses = BTreeSet::new();
    let problems: Vec<String> = texts
        .iter()
        .flat_map(|text| check_promql(text, &mut uses))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // The panels: ingest and delivery rates, latency, attempts by outcome, pending and
    // oldest age, disabled endpoints. Every metric is on the dashboard.
    let missing: Vec<&str> = METRICS
        .iter()
        .map(|m| m.name)
        .filter(|name| !uses.contains(name))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "panel {} queries nothing", panel["title"]);
    }
}

#[test]
fn the_alert_rules_query_only_metrics_hookd_exports() {
    let rules = packaging("prometheus/hookd-alerts.yml");
    let mut uses = BTreeSet::new();
    let problems = check_promql(&rules, &mut uses);
    assert!(problems.is_empty(), "{problems:#?}");
    // The alerts: pending too long, failure rate by outcome, endpoints disabled, ingest
    // errors and API 5xx, a node not claiming.
    let expected = BTreeSet::from([
        "hookd_attempts_total",
        "hookd_claim_duration_seconds",
        "hookd_endpoints_disabled",
        "hookd_http_requests_total",
        "hookd_oldest_pending_age_seconds",
    ]);
    assert_eq!(uses, expected);
}

#[test]
fn a_misspelt_metric_or_label_is_caught() {
    let mut uses = BTreeSet::new();
    for (promql, problem) in [
        (
            "rate(hookd_attempt_total[5m])",
            "hookd_attempt_total is not a metric",
        ),
        ("hookd_deliveries_pending_count", "is a Gauge"),
        (
            "rate(hookd_attempts_total{outcom=\"success\"}[5m])",
            "no label \"outcom\"",
        ),
        ("hookd_deliveries_pending{le=\"1\"}", "no label \"le\""),
        (
            "sum by (endpoint) (rate(hookd_attempts_total[5m]))",
            "by (endpoint)",
        ),
    ] {
        let problems = check_promql(promql, &mut uses);
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{promql}: {problems:?}"
        );
    }
    assert!(check_promql(
        "histogram_quantile(0.99, sum by (le, what) (rate(hookd_commit_duration_seconds_bucket{job=~\"$job\", what=\"ingest\"}[5m])))",
        &mut uses
    )
    .is_empty());
}
