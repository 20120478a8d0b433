//! `plugboard report list [--from ID] [--limit N] | dismiss ID`: what users reported, through
//! the admin API of the running server ([`AdminClient`]).

use reqwest::Method;
use serde_json::Value;

use super::admin_client::{item_path, AdminClient};
use super::format::{shorten, table, text, utc};

const API: &str = "/_plugboard/admin/v1/reports";

/// The widest reason a table shows; the admin API has the whole of it.
const REASON_WIDTH: usize = 60;

/// One page of reports, newest first: `{"reports": […], "total": N, "next_from"?: ID}`.
pub(crate) async fn list(
    client: &AdminClient,
    from: Option<i64>,
    limit: Option<u32>,
) -> Result<Value, String> {
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(format!("from={from}"));
    }
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    let path = if query.is_empty() {
        API.to_owned()
    } else {
        format!("{API}?{}", query.join("&"))
    };
    client.call(Method::GET, &path, None).await
}

pub(crate) async fn dismiss(client: &AdminClient, id: i64) -> Result<(), String> {
    client
        .call(Method::DELETE, &item_path(API, &id.to_string()), None)
        .await
        .map(|_| ())
        .map_err(|e| format!("report {id} was not dismissed: {e}"))
}

/// The table of `plugboard report list`, and a line saying how many there are and how to
/// see the older ones.
pub(crate) fn list_table(page: &Value) -> String {
    let reports = page["reports"].as_array().map_or(&[][..], Vec::as_slice);
    let total = page["total"].as_i64().unwrap_or(0);
    if reports.is_empty() {
        return if total == 0 {
            "no reports\n".into()
        } else {
            format!("no reports on this page ({total} in all)\n")
        };
    }
    let header = ["ID", "RECEIVED", "KIND", "REPORTER", "WHAT", "REASON"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in reports {
        rows.push(vec![
            text(&r["id"]),
            r["received_ts"].as_i64().map_or("-".into(), utc),
            text(&r["kind"]),
            text(&r["reporter"]),
            target(r),
            r["reason"]
                .as_str()
                .map_or("-".into(), |s| shorten(&one_line(s), REASON_WIDTH)),
        ]);
    }
    let mut out = table(&rows);
    out.push_str(&format!("{} of {total} reports", reports.len()));
    if let Some(next) = page["next_from"].as_i64() {
        out.push_str(&format!("; older ones: --from {next}"));
    }
    out.push('\n');
    out
}

/// What a report is about, in one cell: the event with its room and sender, the room, or
/// the user.
fn target(r: &Value) -> String {
    let id = |key: &str| r[key].as_str().unwrap_or("-").to_owned();
    match r["kind"].as_str() {
        Some("event") => format!(
            "{} in {} by {}",
            id("event_id"),
            id("room_id"),
            id("user_id")
        ),
        Some("room") => id("room_id"),
        _ => id("user_id"),
    }
}

/// A reason's line breaks and tabs as spaces, so that a row stays one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_lists_each_report_on_one_line_and_says_how_to_go_on() {
        let page = json!({
            "reports": [
                {"id": 7, "kind": "event", "reporter": "@bob:x", "room_id": "!r:x",
                 "event_id": "$e", "user_id": "@alice:x", "reason": "spam\nand\tmore",
                 "received_ts": 0},
                {"id": 5, "kind": "user", "reporter": "@bob:x", "user_id": "@eve:x",
                 "received_ts": 0},
            ],
            "total": 9,
            "next_from": 5,
        });
        let out = list_table(&page);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("7 "), "{out}");
        assert!(lines[1].contains("$e in !r:x by @alice:x"), "{out}");
        assert!(lines[1].contains("spam and more"), "{out}");
        assert!(lines[2].contains("@eve:x"), "{out}");
        assert_eq!(lines[3], "2 of 9 reports; older ones: --from 5");
    }

    #[test]
    fn an_empty_page_says_so() {
        assert_eq!(
            list_table(&json!({"reports": [], "total": 0})),
            "no reports\n"
        );
        assert_eq!(
            list_table(&json!({"reports": [], "total": 3})),
            "no reports on this page (3 in all)\n"
        );
    }
}
