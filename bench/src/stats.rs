//! Latency summaries: percentiles over recorded samples, rendered as the JSON objects of
//! the result line.

use serde_json::{json, Value};

/// p50/p90/p99/max of a set of millisecond samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl Summary {
    /// Summarises `samples` (any order). Empty input gives all zeros with `samples: 0`,
    /// so a run where nothing succeeded still prints a well-formed line.
    pub fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        Summary {
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            max: samples.last().copied().unwrap_or(0.0),
            samples: samples.len(),
        }
    }

    /// The JSON object of the result line, keys in reading order, values rounded to
    /// microseconds.
    pub fn to_json(self, with_samples: bool) -> String {
        let mut fields = vec![
            ("p50", json!(round3(self.p50)).to_string()),
            ("p90", json!(round3(self.p90)).to_string()),
            ("p99", json!(round3(self.p99)).to_string()),
            ("max", json!(round3(self.max)).to_string()),
        ];
        if with_samples {
            fields.push(("samples", self.samples.to_string()));
        }
        ordered_object(&fields)
    }
}

/// Renders a JSON object from (key, JSON text) pairs, keeping the given key order. serde_json's map sorts keys (the
/// workspace cannot turn on `preserve_order`: the server relies on sorted canonical JSON,
/// and features are unified across the workspace), and a result line is easier to read in
/// a fixed, meaningful order.
pub fn ordered_object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{}", Value::from(*key), value))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Nearest-rank percentile of sorted samples: the smallest sample such that at least `p`
/// percent of all samples are less than or equal to it. No interpolation, so every
/// reported value is one that was actually observed.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rounds to three decimals (microseconds when the unit is milliseconds).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        let s = Summary::of(samples);
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(s.samples, 100);
    }

    #[test]
    fn small_and_empty_inputs() {
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), 1.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 99.0), 3.0);
        let empty = Summary::of(Vec::new());
        assert_eq!((empty.p50, empty.max, empty.samples), (0.0, 0.0, 0));
    }

    #[test]
    fn json_rounds_to_microseconds_and_keeps_order() {
        let text = Summary::of(vec![1.23456]).to_json(true);
        assert!(text.starts_with(r#"{"p50":1.235,"p90":"#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["samples"].as_u64(), Some(1));
    }
}
