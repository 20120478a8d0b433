//! `plugboard appservice add FILE | update FILE | remove ID | list | show ID`: the admin API
//! of the running server ([`AdminClient`]). `remove --offline` works on the database itself,
//! for when the server cannot start because of a runtime registration.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use super::admin_client::{item_path, AdminClient};
use super::format::{ago, count, millis, shorten, table, text, utc};
use crate::config::Config;
use crate::service::now_ms;
use crate::storage::Storage;

const API: &str = "/_plugboard/admin/v1/appservices";

fn yaml(text: String) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/yaml", text.into_bytes()))
}

/// `?allow_takeover=true` when the admin allows it, else nothing.
pub(crate) fn takeover_query(allow: bool) -> &'static str {
    if allow {
        "?allow_takeover=true"
    } else {
        ""
    }
}

pub(crate) async fn add(
    client: &AdminClient,
    file: &Path,
    allow_takeover: bool,
) -> Result<Value, String> {
    let text = read_registration(file)?;
    let path = format!("{API}{}", takeover_query(allow_takeover));
    client
        .call(Method::POST, &path, yaml(text))
        .await
        .map_err(|e| format!("{} was not added: {e}", file.display()))
}

pub(crate) async fn update(
    client: &AdminClient,
    file: &Path,
    allow_takeover: bool,
) -> Result<Value, String> {
    let text = read_registration(file)?;
    let reg = crate::service::appservice::registration::Registration::from_yaml(
        &text,
        crate::service::appservice::registration::Origin::File(file.to_path_buf()),
    )
    .map_err(|e| e.to_string())?;
    client
        .call(
            Method::PUT,
            &format!(
                "{}{}",
                item_path(API, &reg.id),
                takeover_query(allow_takeover)
            ),
            yaml(text),
        )
        .await
        .map_err(|e| format!("{} was not updated: {e}", file.display()))
}

pub(crate) async fn remove(client: &AdminClient, id: &str) -> Result<(), String> {
    client
        .call(Method::DELETE, &item_path(API, id), None)
        .await
        .map(|_| ())
        .map_err(|e| format!("`{id}` was not removed: {e}"))
}

pub(crate) async fn list(client: &AdminClient) -> Result<Vec<Value>, String> {
    let body = client.call(Method::GET, API, None).await?;
    Ok(body["appservices"].as_array().cloned().unwrap_or_default())
}

pub(crate) async fn show(client: &AdminClient, id: &str) -> Result<Value, String> {
    client.call(Method::GET, &item_path(API, id), None).await
}

fn read_registration(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// `remove --offline`: deletes a runtime registration and its queue from the database, for a
/// server that is stopped (a running one keeps the service until it restarts).
pub(crate) async fn remove_offline(config: &Config, id: &str) -> Result<(), String> {
    let storage = Storage::open(&config.database_url())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let removed = storage
        .remove_appservice_registration(id)
        .await
        .map_err(|e| format!("cannot remove `{id}`: {e}"))?;
    if removed {
        Ok(())
    } else {
        Err(format!(
            "the database holds no runtime registration `{id}` (a service from a file is \
             removed by taking it out of appservice_config_files)"
        ))
    }
}

/// The table of `plugboard appservice list`.
pub(crate) fn list_table(services: &[Value]) -> String {
    if services.is_empty() {
        return "no application services are registered\n".into();
    }
    let now = now_ms();
    let header = [
        "ID",
        "STATE",
        "BEHIND",
        "LAST SUCCESS",
        "LAST ERROR",
        "TXNS",
        "EVENTS",
        "RETRIES",
        "P50",
        "P99",
        "ORIGIN",
        "URL",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for s in services {
        rows.push(vec![
            text(&s["id"]),
            state(s),
            count(&s["events_behind"]),
            s["last_success_ms"]
                .as_i64()
                .map_or("-".into(), |ms| ago(now, ms)),
            s["last_error"]["ts"].as_i64().map_or("-".into(), |ms| {
                format!(
                    "{}: {}",
                    ago(now, ms),
                    shorten(s["last_error"]["error"].as_str().unwrap_or(""), 40)
                )
            }),
            count(&s["transactions_sent"]),
            count(&s["events_sent"]),
            count(&s["retries"]),
            millis(&s["delivery_ms"]["p50"]),
            millis(&s["delivery_ms"]["p99"]),
            text(&s["origin"]),
            text(&s["url"]),
        ]);
    }
    table(&rows)
}

/// The page of `plugboard appservice show ID`.
pub(crate) fn show_page(s: &Value) -> String {
    let now = now_ms();
    let when = |ms: Option<i64>| {
        ms.map_or("never".into(), |ms| {
            format!("{} ({})", utc(ms), ago(now, ms))
        })
    };
    let origin = match s["file"].as_str() {
        Some(file) => format!("file {file}"),
        None => "runtime (stored in the database)".into(),
    };
    let behind = match (s["events_behind"].as_i64(), s["position"].as_i64()) {
        (Some(n), Some(p)) => format!("{n} events after stream position {p}"),
        _ => "-".into(),
    };
    let in_flight = match s["in_flight"]["txn_id"].as_str() {
        Some(txn) => format!(
            "transaction {txn} with {} events",
            s["in_flight"]["events"].as_i64().unwrap_or(0)
        ),
        None => "none".into(),
    };
    let last_error = match s["last_error"]["ts"].as_i64() {
        Some(ms) => format!(
            "{}: {}",
            when(Some(ms)),
            s["last_error"]["error"].as_str().unwrap_or("")
        ),
        None => "none".into(),
    };
    let delivery = format!(
        "p50 {} / p99 {} (over the last {} pushes)",
        millis(&s["delivery_ms"]["p50"]),
        millis(&s["delivery_ms"]["p99"]),
        s["delivery_ms"]["samples"].as_u64().unwrap_or(0)
    );
    let yes_no = |v: &Value| {
        if v.as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
        .to_owned()
    };
    let protocols = s["protocols"]
        .as_array()
        .filter(|p| !p.is_empty())
        .map_or("-".into(), |p| {
            p.iter().map(text).collect::<Vec<_>>().join(", ")
        });
    let rows = [
        ("id", text(&s["id"])),
        ("origin", origin),
        ("url", text(&s["url"])),
        ("sender", text(&s["sender"])),
        ("state", state(s)),
        ("events behind", behind),
        ("in flight", in_flight),
        ("last success", when(s["last_success_ms"].as_i64())),
        ("last error", last_error),
        ("transactions sent", count(&s["transactions_sent"])),
        ("events sent", count(&s["events_sent"])),
        ("retries", count(&s["retries"])),
        ("probes", count(&s["probes"])),
        ("delivery time", delivery),
        ("rate limited", yes_no(&s["rate_limited"])),
        ("receive ephemeral", yes_no(&s["receive_ephemeral"])),
        ("protocols", protocols),
    ];
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{:<19}{value}\n", format!("{key}:")));
    }
    out.push_str("namespaces:\n");
    for kind in ["users", "aliases", "rooms"] {
        let list = s["namespaces"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let shown = if list.is_empty() {
            "-".to_owned()
        } else {
            list.iter()
                .map(|n| {
                    let exclusive = if n["exclusive"].as_bool() == Some(true) {
                        " (exclusive)"
                    } else {
                        ""
                    };
                    format!("{}{exclusive}", text(&n["regex"]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("  {:<17}{shown}\n", format!("{kind}:")));
    }
    out
}

fn state(s: &Value) -> String {
    match s["up"].as_bool() {
        Some(true) => "up".into(),
        Some(false) => "DOWN".into(),
        None if s["url"].is_null() => "no url".into(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_is_a_table_with_one_row_per_service() {
        let table = list_table(&[
            json!({"id": "bridge", "up": true, "url": "http://127.0.0.1:1", "origin": "runtime",
                   "events_behind": 3, "transactions_sent": 2, "events_sent": 5, "retries": 1,
                   "delivery_ms": {"p50": 1.5, "p99": 12.0}, "last_success_ms": null,
                   "last_error": null}),
            json!({"id": "quiet", "up": null, "url": null, "origin": "file"}),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("ID "), "{table}");
        assert!(lines[1].starts_with("bridge  up "), "{table}");
        assert!(
            lines[1].contains("1.50ms") && lines[1].contains("12ms"),
            "{table}"
        );
        assert!(lines[2].starts_with("quiet   no url"), "{table}");
        assert_eq!(list_table(&[]), "no application services are registered\n");
    }
}
