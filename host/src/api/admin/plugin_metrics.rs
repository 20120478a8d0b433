//! The plugin families of `GET /metrics`: per plugin its state, transactions, events,
//! errors, traps by kind, retries, call time, memory and kv bytes.

use super::exposition::{family, sample, summary, Sample};
use crate::plugins::lane::TrapKind;
use crate::plugins::lifecycle::{Overview, State};

/// The plugin families, one line per plugin (per kind or state where labelled so).
pub(crate) fn render(plugins: &[Overview]) -> String {
    let mut out = String::new();
    let out = &mut out;
    let id = ("plugin", plugin_id as fn(&Overview) -> &str);
    family(
        out,
        plugins,
        (
            "plugboard_plugin_state",
            "gauge",
            "1 for the state the plugin is in (running, failing, disabled, replaying), 0 for the others.",
        ),
        id,
        |o| {
            [State::Running, State::Failing, State::Disabled, State::Replaying]
                .iter()
                .map(|s| Sample {
                    suffix: "",
                    label: Some(("state", s.name().to_string())),
                    value: f64::from(u8::from(o.state == *s)),
                })
                .collect()
        },
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_transactions_total",
            "counter",
            "Transactions the plugin accepted since the server started.",
        ),
        id,
        |o| sample(o.stats.transactions as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_events_total",
            "counter",
            "Events in the transactions the plugin accepted since the server started.",
        ),
        id,
        |o| sample(o.stats.events as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_errors_total",
            "counter",
            "Calls into the plugin that failed (error answers and traps) since the server started.",
        ),
        id,
        |o| sample(o.stats.errors as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_traps_total",
            "counter",
            "Calls that trapped, by kind: deadline, memory, panic, other.",
        ),
        id,
        |o| {
            TrapKind::ALL
                .iter()
                .map(|k| Sample {
                    suffix: "",
                    label: Some(("kind", k.name().to_string())),
                    value: o.stats.traps.get(k).copied().unwrap_or(0) as f64,
                })
                .collect()
        },
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_retries_total",
            "counter",
            "Failed deliveries of a transaction (each retried with the same txn id).",
        ),
        id,
        |o| sample(o.delivery.as_ref().map_or(0, |d| d.retries) as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_call_seconds",
            "summary",
            "How long calls into the plugin took (quantiles over the latest calls).",
        ),
        id,
        |o| summary(&o.stats.call_times),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_memory_bytes",
            "gauge",
            "The linear memory of the plugin's instance after its latest call.",
        ),
        id,
        |o| sample(o.stats.memory_bytes as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_kv_bytes",
            "gauge",
            "Bytes of keys and values in the plugin's store.",
        ),
        id,
        |o| sample(o.stats.kv_bytes as f64),
    );
    family(
        out,
        plugins,
        (
            "plugboard_plugin_events_behind",
            "gauge",
            "Events stored after the plugin's acknowledged queue position.",
        ),
        id,
        |o| {
            o.backlog
                .map(|b| sample(b.events_after as f64))
                .unwrap_or_default()
        },
    );
    out.clone()
}

fn plugin_id(o: &Overview) -> &str {
    &o.info.manifest.id
}
