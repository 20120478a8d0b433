//! `plugboard appservice add FILE | update FILE | remove ID | list | show ID`: the admin API
//! of the running server, called with the admin token from the data dir.
//!
//! The server is found at `--url`, else at the address the running server wrote to the data
//! dir (`listening.addr`: `listen` may be port 0 or `0.0.0.0`), else at `listen` from the
//! configuration. `remove --offline` works on the database itself, for when the server cannot
//! start because of a runtime registration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::config::Config;
use crate::service::now_ms;
use crate::storage::Storage;

const API: &str = "/_plugboard/admin/v1/appservices";

/// A client of the admin API of one running server.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// The server that `config`'s data dir belongs to (or the one at `url`), with its admin
    /// token.
    pub fn new(config: &Config, url: Option<&str>) -> Result<AdminClient, String> {
        let token_path = config.admin_token_path();
        let token = std::fs::read_to_string(&token_path).map_err(|e| {
            format!(
                "cannot read the admin token {}: {e} (has `plugboard serve` run with this data \
                 dir? pass the same --config / --data-dir as to `serve`)",
                token_path.display()
            )
        })?;
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", server_addr(config)),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(AdminClient {
            http,
            base,
            token: token.trim().to_owned(),
        })
    }

    /// Calls the admin API; a Matrix error comes back as its message (with errcode and
    /// status), a server that cannot be reached as a message saying so.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.header("content-type", "application/yaml").body(body);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                format!(
                    "cannot reach the server at {}: {} (is `plugboard serve` running with this \
                     data dir? --url names another address)",
                    self.base,
                    root_cause(&e)
                )
            } else {
                format!("request to {url} failed: {}", root_cause(&e))
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read the answer of {url}: {}", root_cause(&e)))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        match (body["errcode"].as_str(), body["error"].as_str()) {
            (Some(code), Some(error)) => Err(format!("{error} ({code}, HTTP {})", status.as_u16())),
            _ => Err(format!(
                "{url} answered HTTP {} (is this a Plugboard server?)",
                status.as_u16()
            )),
        }
    }

    pub async fn add(&self, file: &Path) -> Result<Value, String> {
        let text = read_registration(file)?;
        self.call(Method::POST, API, Some(text))
            .await
            .map_err(|e| format!("{} was not added: {e}", file.display()))
    }

    pub async fn update(&self, file: &Path) -> Result<Value, String> {
        let text = read_registration(file)?;
        let reg = crate::service::appservice::registration::Registration::from_yaml(
            &text,
            &file.display().to_string(),
        )
        .map_err(|e| e.to_string())?;
        self.call(Method::PUT, &service_path(&reg.id), Some(text))
            .await
            .map_err(|e| format!("{} was not updated: {e}", file.display()))
    }

    pub async fn remove(&self, id: &str) -> Result<(), String> {
        self.call(Method::DELETE, &service_path(id), None)
            .await
            .map(|_| ())
            .map_err(|e| format!("`{id}` was not removed: {e}"))
    }

    pub async fn list(&self) -> Result<Vec<Value>, String> {
        let body = self.call(Method::GET, API, None).await?;
        Ok(body["appservices"].as_array().cloned().unwrap_or_default())
    }

    pub async fn show(&self, id: &str) -> Result<Value, String> {
        self.call(Method::GET, &service_path(id), None).await
    }
}

fn service_path(id: &str) -> String {
    format!(
        "{API}/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn read_registration(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Where the server of `config`'s data dir listens: the address it wrote there, else `listen`;
/// an unspecified address (`0.0.0.0`, `::`) is reached on loopback.
pub fn server_addr(config: &Config) -> SocketAddr {
    let written = std::fs::read_to_string(crate::server::listening_addr_path(config))
        .ok()
        .and_then(|text| text.trim().parse::<SocketAddr>().ok());
    let addr = written.unwrap_or(config.listen);
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `remove --offline`: deletes a runtime registration and its queue from the database, for a
/// server that is stopped (a running one keeps the service until it restarts).
pub async fn remove_offline(config: &Config, id: &str) -> Result<(), String> {
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
pub fn list_table(services: &[Value]) -> String {
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
pub fn show_page(s: &Value) -> String {
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

/// Columns padded to their widest cell, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn count(v: &Value) -> String {
    v.as_i64().map_or("-".into(), |n| n.to_string())
}

fn millis(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |ms| {
        if ms < 10.0 {
            format!("{ms:.2}ms")
        } else {
            format!("{ms:.0}ms")
        }
    })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// How long ago `ms` was, in the largest whole unit.
fn ago(now: i64, ms: i64) -> String {
    let secs = (now - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_500), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(ago(10_000, 5_000), "5s ago");
        assert_eq!(ago(200_000, 0), "3m ago");
        assert_eq!(ago(7_200_000, 0), "2h ago");
    }

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

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let dir = std::env::temp_dir().join(format!("pb-cli-{}", std::process::id()));
        let config = Config {
            data_dir: dir,
            listen: "0.0.0.0:8448".parse().unwrap(),
            ..Config::default()
        };
        assert_eq!(server_addr(&config), "127.0.0.1:8448".parse().unwrap());
    }
}
