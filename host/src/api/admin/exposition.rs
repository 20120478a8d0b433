//! The Prometheus text exposition format (0.0.4) that `GET /metrics` writes: metric families,
//! their samples and label escaping, shared by the appservice and plugin families.

use std::fmt::Write;

/// One line of a metric family: a suffix of its name (`_sum`), one more label (a quantile, a
/// kind), and the value.
pub(crate) struct Sample {
    pub(crate) suffix: &'static str,
    pub(crate) label: Option<(&'static str, String)>,
    pub(crate) value: f64,
}

pub(crate) fn sample(value: f64) -> Vec<Sample> {
    vec![Sample {
        suffix: "",
        label: None,
        value,
    }]
}

/// The lines of a summary over `samples`: its p50 and p99, `_sum` and `_count`.
pub(crate) fn summary(samples: &crate::service::samples::DurationSamples) -> Vec<Sample> {
    let quantile = |q: f64, label: &str| Sample {
        suffix: "",
        label: Some(("quantile", label.to_string())),
        value: samples.quantile(q).map_or(f64::NAN, |d| d.as_secs_f64()),
    };
    vec![
        quantile(0.5, "0.5"),
        quantile(0.99, "0.99"),
        Sample {
            suffix: "_sum",
            label: None,
            value: samples.total.as_secs_f64(),
        },
        Sample {
            suffix: "_count",
            label: None,
            value: samples.count as f64,
        },
    ]
}

/// Writes one metric family: its help, its type, and the samples of every item, each labelled
/// `{key}="{id}"` with `id` from `id_of`.
pub(crate) fn family<T>(
    out: &mut String,
    items: &[T],
    (name, kind, help): (&str, &str, &str),
    (key, id_of): (&str, impl Fn(&T) -> &str),
    samples: impl Fn(&T) -> Vec<Sample>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for item in items {
        let id = escape(id_of(item));
        for s in samples(item) {
            let extra = s
                .label
                .map(|(k, v)| format!(",{k}=\"{}\"", escape(&v)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{name}{}{{{key}=\"{id}\"{extra}}} {}",
                s.suffix,
                number(s.value)
            );
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
