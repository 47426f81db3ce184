//! Figures of one run, medians over runs, and how both are printed.

use serde::Serialize;
use serde_json::{json, Map, Value};

/// One measured number, e.g. `p99 4.21 ms` (JSON key `p99_ms`).
#[derive(Clone, Debug)]
pub struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub decimals: usize,
    /// NaN when the run could not measure it (e.g. nothing was delivered).
    pub value: f64,
}

impl Figure {
    pub fn new(
        key: &'static str,
        label: &'static str,
        unit: &'static str,
        decimals: usize,
        value: f64,
    ) -> Self {
        Self {
            key,
            label,
            unit,
            decimals,
            value,
        }
    }

    fn human(&self) -> String {
        let value = if self.value.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{:.*}", self.decimals, self.value)
        };
        match self.unit {
            "" => format!("{} {value}", self.label),
            unit => format!("{} {value} {unit}", self.label),
        }
    }
}

pub type Settings = Vec<(&'static str, String)>;

pub fn settings_line(settings: &Settings) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn figures_line(figures: &[Figure]) -> String {
    figures
        .iter()
        .map(Figure::human)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median of each figure across runs, in the order of the first run.
pub fn medians(runs: &[Vec<Figure>]) -> Vec<Figure> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|template| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|run| run.iter().find(|f| f.key == template.key))
                .map(|f| f.value)
                .collect();
            Figure {
                value: median(values),
                ..template.clone()
            }
        })
        .collect()
}

/// Median ignoring NaN; the mean of the middle two for an even count.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// JSON keys and labels for p50, p90, p99 and max.
pub type LatencyNames = [(&'static str, &'static str); 4];

pub const PACED_LATENCY: LatencyNames = [
    ("p50_ms", "p50"),
    ("p90_ms", "p90"),
    ("p99_ms", "p99"),
    ("max_ms", "max"),
];

/// p50/p90/p99/max of microsecond samples, as millisecond figures.
pub fn latency_figures(mut samples_us: Vec<u64>, names: &LatencyNames) -> Vec<Figure> {
    samples_us.sort_unstable();
    names
        .iter()
        .zip([50.0, 90.0, 99.0, 100.0])
        .map(|(&(key, label), p)| {
            let ms = percentile(&samples_us, p).map_or(f64::NAN, |us| us as f64 / 1000.0);
            Figure::new(key, label, "ms", 2, ms)
        })
        .collect()
}

/// Keeps the JSON readable; microsecond precision is all the data has.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn figures_json(figures: &[Figure]) -> Value {
    let map: Map<String, Value> = figures
        .iter()
        .map(|f| (f.key.to_owned(), json!(round3(f.value))))
        .collect();
    Value::Object(map)
}

fn settings_json(settings: &Settings) -> Value {
    let map: Map<String, Value> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    Value::Object(map)
}

/// The final machine-readable line of a scenario, `scenario` first so the
/// lines are easy to pick apart. NaN figures become null.
pub fn scenario_json(
    scenario: &str,
    machine: &Settings,
    settings: &Settings,
    runs: &[Vec<Figure>],
) -> serde_json::Result<String> {
    // A struct keeps its field order; a JSON object built with json! would not.
    #[derive(Serialize)]
    struct Line<'a> {
        scenario: &'a str,
        machine: Value,
        settings: Value,
        runs: Vec<Value>,
        median: Value,
    }
    serde_json::to_string(&Line {
        scenario,
        machine: settings_json(machine),
        settings: settings_json(settings),
        runs: runs.iter().map(|r| figures_json(r)).collect(),
        median: figures_json(&medians(runs)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn medians_skip_nan() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn json_line_shape() {
        let runs = vec![
            vec![Figure::new("x", "x", "", 0, 1.0)],
            vec![Figure::new("x", "x", "", 0, 3.0)],
            vec![Figure::new("x", "x", "", 0, f64::NAN)],
        ];
        let line = scenario_json("s", &vec![], &vec![("a", "1".into())], &runs)
            .expect("figures serialize");
        assert!(line.starts_with(r#"{"scenario":"s","#), "{line}");
        let v: Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["median"]["x"], 2.0);
        assert_eq!(v["runs"][2]["x"], Value::Null);
        assert_eq!(v["settings"]["a"], "1");
    }
}
