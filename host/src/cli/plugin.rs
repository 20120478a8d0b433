//! `plugboard plugin install | upgrade | list | show | enable | disable | reload | remove |
//! skip | endpoints`: the plugin admin API of the running server ([`AdminClient`]). Install
//! with `--from-beginning` or `--from` follows the history replay with a progress bar.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use super::admin_client::{item_path, AdminClient};
use super::appservice::takeover_query;
use super::format::{ago, count, millis, shorten, table, text, utc};
use crate::service::now_ms;

const API: &str = "/_plugboard/admin/v1/plugins";

/// Where an installed plugin's delivery starts.
pub(crate) enum Start {
    Live,
    Beginning,
    From(String),
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The manifest named, or `plugin.toml` beside the component.
fn manifest_text(component: &Path, manifest: Option<&Path>) -> Result<String, String> {
    let path = match manifest {
        Some(p) => p.to_path_buf(),
        None => component.with_file_name("plugin.toml"),
    };
    std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the manifest {}: {e} (name it with --manifest)",
            path.display()
        )
    })
}

fn json_body(v: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

pub(crate) async fn install(
    client: &AdminClient,
    component: &Path,
    manifest: Option<&Path>,
    config: Option<&Path>,
    start: Start,
    allow_takeover: bool,
) -> Result<Value, String> {
    let wasm = read(component)?;
    let manifest = manifest_text(component, manifest)?;
    let config = match config {
        Some(p) => Some(
            String::from_utf8(read(p)?)
                .map_err(|_| format!("{} is not UTF-8 text", p.display()))?,
        ),
        None => None,
    };
    let start = match start {
        Start::Live => json!("live"),
        Start::Beginning => json!("beginning"),
        Start::From(event) => json!({ "from": event }),
    };
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(&wasm),
        "manifest": manifest,
        "config": config,
        "start": start,
    });
    let path = format!("{API}{}", takeover_query(allow_takeover));
    client
        .call(Method::POST, &path, json_body(&body))
        .await
        .map_err(|e| format!("{} was not installed: {e}", component.display()))
}

pub(crate) async fn upgrade(
    client: &AdminClient,
    id: &str,
    component: &Path,
    manifest: Option<&Path>,
    allow_takeover: bool,
) -> Result<Value, String> {
    let wasm = read(component)?;
    let manifest = match manifest {
        Some(p) => Some(manifest_text(component, Some(p))?),
        None => None,
    };
    let body = json!({
        "component": base64::engine::general_purpose::STANDARD.encode(&wasm),
        "manifest": manifest,
    });
    client
        .call(
            Method::PUT,
            &format!("{}{}", item_path(API, id), takeover_query(allow_takeover)),
            json_body(&body),
        )
        .await
        .map_err(|e| format!("`{id}` was not upgraded: {e}"))
}

pub(crate) async fn list(client: &AdminClient) -> Result<Value, String> {
    client.call(Method::GET, API, None).await
}

pub(crate) async fn show(client: &AdminClient, id: &str) -> Result<Value, String> {
    client.call(Method::GET, &item_path(API, id), None).await
}

/// `enable` or `disable`.
pub(crate) async fn action(client: &AdminClient, id: &str, what: &str) -> Result<Value, String> {
    let path = format!("{}/{what}", item_path(API, id));
    client
        .call(Method::POST, &path, None)
        .await
        .map_err(|e| format!("`{id}`: {what} failed: {e}"))
}

/// `reload`, which checks a changed manifest as `upgrade` does.
pub(crate) async fn reload(
    client: &AdminClient,
    id: &str,
    allow_takeover: bool,
) -> Result<Value, String> {
    let path = format!(
        "{}/reload{}",
        item_path(API, id),
        takeover_query(allow_takeover)
    );
    client
        .call(Method::POST, &path, None)
        .await
        .map_err(|e| format!("`{id}`: reload failed: {e}"))
}

pub(crate) async fn remove(client: &AdminClient, id: &str) -> Result<(), String> {
    client
        .call(Method::DELETE, &item_path(API, id), None)
        .await
        .map(drop)
        .map_err(|e| format!("`{id}` was not removed: {e}"))
}

pub(crate) async fn skip(client: &AdminClient, id: &str, txn: &str) -> Result<Value, String> {
    let path = format!("{}/skip/{txn}", item_path(API, id));
    client
        .call(Method::POST, &path, None)
        .await
        .map_err(|e| format!("transaction {txn} of `{id}` was not skipped: {e}"))
}

pub(crate) async fn endpoints(client: &AdminClient, id: &str, on: bool) -> Result<Value, String> {
    let path = format!("{}/endpoints", item_path(API, id));
    client
        .call(Method::PUT, &path, json_body(&json!({ "enabled": on })))
        .await
        .map_err(|e| format!("`{id}`: endpoints not changed: {e}"))
}

/// Follows a replay until it is done, drawing a bar on stderr (a line every few seconds when
/// stderr is not a terminal): events done / total, the rate, and the time left.
pub(crate) async fn follow_replay(client: &AdminClient, id: &str) -> Result<Value, String> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut first: Option<i64> = None;
    let mut last_line = Instant::now() - Duration::from_secs(10);
    loop {
        let p = show(client, id).await?;
        let Some(replay) = p.get("replay").filter(|r| !r.is_null()) else {
            if tty {
                eprintln!();
            }
            eprintln!("replay done in {:.1}s", started.elapsed().as_secs_f64());
            return Ok(p);
        };
        let done = replay["done"].as_i64().unwrap_or(0);
        let total = replay["total"].as_i64().unwrap_or(0).max(1);
        let base = *first.get_or_insert(done);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = (done - base) as f64 / secs;
        let line = progress_line(done, total, rate);
        if tty {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= Duration::from_secs(2) {
            eprintln!("{line}");
            last_line = Instant::now();
        }
        if p["state"] == "disabled" || p["state"] == "failing" {
            if tty {
                eprintln!();
            }
            return Err(format!(
                "the replay stopped: `{id}` is {} ({})",
                text(&p["state"]),
                text(&p["last_error"]["error"])
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `[#####.....] 1200 / 5000 events  800/s  ~5s left`.
pub(crate) fn progress_line(done: i64, total: i64, rate: f64) -> String {
    const WIDTH: i64 = 30;
    let filled = (done.clamp(0, total) * WIDTH / total.max(1)) as usize;
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    );
    let left = if rate > 0.0 {
        format!("  ~{:.0}s left", (total - done).max(0) as f64 / rate)
    } else {
        String::new()
    };
    format!("[{bar}] {done} / {total} events  {rate:.0}/s{left}")
}

/// The table of `plugboard plugin list`.
pub(crate) fn list_table(body: &Value) -> String {
    let plugins = body["plugins"].as_array().cloned().unwrap_or_default();
    let broken = body["not_loaded"].as_array().cloned().unwrap_or_default();
    if plugins.is_empty() && broken.is_empty() {
        return "no plugins are installed\n".into();
    }
    let header = [
        "ID", "VERSION", "STATE", "BEHIND", "TXNS", "EVENTS", "ERRORS", "TRAPS", "P50", "P99",
        "MEMORY", "KV",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for p in &plugins {
        let traps: i64 = p["traps"]
            .as_object()
            .map_or(0, |t| t.values().filter_map(Value::as_i64).sum());
        rows.push(vec![
            text(&p["id"]),
            text(&p["version"]),
            state(p),
            count(&p["events_behind"]),
            count(&p["transactions"]),
            count(&p["events"]),
            count(&p["errors"]),
            traps.to_string(),
            millis(&p["call_ms"]["p50"]),
            millis(&p["call_ms"]["p99"]),
            bytes(&p["memory_bytes"]),
            bytes(&p["kv_bytes"]),
        ]);
    }
    let mut out = table(&rows);
    for b in &broken {
        out.push_str(&format!(
            "{}: not loaded: {}\n",
            text(&b["id"]),
            text(&b["error"])
        ));
    }
    out
}

fn state(p: &Value) -> String {
    match (
        p["state"].as_str(),
        p["replay"]["done"].as_i64(),
        p["replay"]["total"].as_i64(),
    ) {
        (Some("replaying"), Some(done), Some(total)) => format!("replaying {done}/{total}"),
        (Some(s), _, _) => s.to_string(),
        _ => "-".into(),
    }
}

fn bytes(v: &Value) -> String {
    match v.as_i64() {
        None => "-".into(),
        Some(b) if b < 1024 => format!("{b}B"),
        Some(b) if b < 1 << 20 => format!("{:.1}KiB", b as f64 / 1024.0),
        Some(b) => format!("{:.1}MiB", b as f64 / (1 << 20) as f64),
    }
}

/// The page of `plugboard plugin show ID`.
pub(crate) fn show_page(p: &Value) -> String {
    let now = now_ms();
    let traps = p["traps"].as_object().map_or("-".into(), |t| {
        t.iter()
            .map(|(k, v)| format!("{k} {}", count(v)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let caps = &p["capabilities"];
    let allow = caps["http_allow"]
        .as_array()
        .filter(|a| !a.is_empty())
        .map_or("none".into(), |a| {
            a.iter().map(text).collect::<Vec<_>>().join(", ")
        });
    let in_flight = match p["in_flight"]["txn_id"].as_str() {
        Some(txn) => format!(
            "transaction {txn} with {} events",
            p["in_flight"]["events"].as_i64().unwrap_or(0)
        ),
        None => "none".into(),
    };
    let last_error = match p["last_error"]["ts"].as_i64() {
        Some(ms) => format!(
            "{} ({}): {}",
            utc(ms),
            ago(now, ms),
            shorten(p["last_error"]["error"].as_str().unwrap_or(""), 200)
        ),
        None => "none".into(),
    };
    let yes_no = |v: &Value| {
        if v.as_bool() == Some(true) {
            "on"
        } else {
            "off"
        }
        .to_string()
    };
    let rows = [
        ("id", text(&p["id"])),
        ("version", text(&p["version"])),
        ("description", text(&p["description"])),
        ("state", state(p)),
        ("sender", text(&p["sender"])),
        ("web endpoints", yes_no(&p["endpoints"])),
        ("component", text(&p["component_sha256"])),
        ("events behind", count(&p["events_behind"])),
        ("in flight", in_flight),
        ("transactions", count(&p["transactions"])),
        ("events", count(&p["events"])),
        ("timers fired", count(&p["timers_fired"])),
        ("queries", count(&p["queries"])),
        ("web requests", count(&p["http_requests"])),
        ("errors", count(&p["errors"])),
        ("traps", traps),
        ("retries", count(&p["retries"])),
        (
            "call time",
            format!(
                "p50 {} / p99 {} (over the last {} calls)",
                millis(&p["call_ms"]["p50"]),
                millis(&p["call_ms"]["p99"]),
                count(&p["call_ms"]["samples"])
            ),
        ),
        ("memory", bytes(&p["memory_bytes"])),
        (
            "kv",
            format!(
                "{} of {}",
                bytes(&p["kv_bytes"]),
                bytes(&caps["kv_quota_bytes"])
            ),
        ),
        ("memory cap", format!("{} MiB", count(&caps["memory_mb"]))),
        ("deadline", format!("{} ms", count(&caps["deadline_ms"]))),
        ("http allowed", allow),
        ("last error", last_error),
    ];
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{:<15}{value}\n", format!("{key}:")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_has_a_bar_counts_rate_and_time_left() {
        assert_eq!(
            progress_line(500, 1000, 250.0),
            "[###############...............] 500 / 1000 events  250/s  ~2s left"
        );
        assert!(progress_line(0, 0, 0.0).starts_with("[..............................] 0 / 0"));
        assert!(progress_line(2000, 1000, 1.0).contains("[##############################]"));
    }

    #[test]
    fn the_list_shows_state_and_plugins_not_loaded() {
        let body = json!({
            "plugins": [{"id": "echo-bot", "version": "0.1.0", "state": "replaying",
                         "replay": {"done": 3, "total": 9}, "transactions": 2, "events": 5,
                         "errors": 0, "traps": {"deadline": 1, "panic": 2},
                         "call_ms": {"p50": 0.2, "p99": 1.5}, "memory_bytes": 1114112,
                         "kv_bytes": 10, "events_behind": 6}],
            "not_loaded": [{"id": "bad", "error": "the file is not WebAssembly"}],
        });
        let t = list_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].starts_with("echo-bot  0.1.0    replaying 3/9"),
            "{t}"
        );
        assert!(
            lines[1].contains(" 3 ") && lines[1].contains("1.1MiB"),
            "{t}"
        );
        assert_eq!(lines[2], "bad: not loaded: the file is not WebAssembly");
    }
}
