//! How hits are shown: the `!search` reply (a numbered list with sender, time, snippet and a
//! matrix.to link, as plain text and HTML) and the web endpoint's JSON.

use plugboard_sdk::message::escape_html;
use serde_json::{json, Value};

use crate::dates;
use crate::index::{Hit, Results};
use crate::snippet;

/// Bytes of text around the matches in a snippet.
pub const SNIPPET_BYTES: usize = 160;

/// `https://matrix.to/#/ROOM/EVENT`, with what may not stand in a URL fragment escaped.
pub fn link(room: &str, event: &str) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    format!("https://matrix.to/#/{}/{}", enc(room), enc(event))
}

/// The reply to `!search QUERY`: plain text and HTML.
pub fn reply(query: &str, terms: &[String], results: &Results) -> (String, String) {
    if results.hits.is_empty() {
        let text = format!("No messages here match `{query}`.");
        let html = format!(
            "No messages here match <code>{}</code>.",
            escape_html(query)
        );
        return (text, html);
    }
    let head = if !results.exact {
        format!(
            "At least {} messages match `{query}`; the best {}:",
            results.total,
            results.hits.len()
        )
    } else if results.total > results.hits.len() {
        format!(
            "{} messages match `{query}`; the best {}:",
            results.total,
            results.hits.len()
        )
    } else if results.total == 1 {
        format!("1 message matches `{query}`:")
    } else {
        format!("{} messages match `{query}`:", results.total)
    };
    let mut text = head.clone();
    let mut html = format!(
        "{}<ol>",
        escape_html(&head).replacen(
            &format!("`{}`", escape_html(query)),
            &format!("<code>{}</code>", escape_html(query)),
            1
        )
    );
    for (i, hit) in results.hits.iter().enumerate() {
        let d = &hit.doc;
        let s = snippet::make(&d.text, terms, SNIPPET_BYTES);
        let url = link(&d.room, &d.event_id);
        let when = dates::format(d.ts);
        text.push_str(&format!(
            "\n{}. {}, {when}: {} {url}",
            i + 1,
            d.sender,
            s.plain
        ));
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a>, {when}: {} <a href=\"{}\">(link)</a></li>",
            escape_html(&format!("https://matrix.to/#/{}", d.sender)),
            escape_html(&d.sender),
            s.html,
            escape_html(&url)
        ));
    }
    html.push_str("</ol>");
    (text, html)
}

/// One hit as the web endpoint answers it.
pub fn hit_json(hit: &Hit, terms: &[String]) -> Value {
    let d = &hit.doc;
    let s = snippet::make(&d.text, terms, SNIPPET_BYTES);
    json!({
        "room_id": d.room,
        "event_id": d.event_id,
        "sender": d.sender,
        "origin_server_ts": d.ts,
        "snippet": s.plain,
        "highlights": s.marked,
        "score": (hit.score * 1000.0).round() / 1000.0,
        "link": link(&d.room, &d.event_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::StoredDoc;

    fn results(n: usize, total: usize) -> Results {
        Results {
            hits: (0..n)
                .map(|i| Hit {
                    doc: StoredDoc {
                        doc: i as u32,
                        event_id: format!("$e{i}"),
                        room: "!r:test".into(),
                        sender: "@alice:test".into(),
                        ts: 1_700_000_000_000,
                        text: format!("the <fox> number {i}"),
                    },
                    score: 1.0,
                })
                .collect(),
            total,
            exact: true,
        }
    }

    #[test]
    fn a_reply_lists_sender_time_snippet_and_link() {
        let (text, html) = reply("fox", &["fox".into()], &results(2, 7));
        assert!(
            text.starts_with("7 messages match `fox`; the best 2:"),
            "{text}"
        );
        assert!(text.contains(
            "\n1. @alice:test, 2023-11-14 22:13 UTC: the <**fox**> number 0 https://matrix.to/#/!r:test/$e0"
        ), "{text}");
        assert!(html.contains("<code>fox</code>"), "{html}");
        assert!(
            html.contains("the &lt;<strong>fox</strong>&gt; number 1"),
            "{html}"
        );
        let (none, _) = reply("zebra", &[], &results(0, 0));
        assert_eq!(none, "No messages here match `zebra`.");
    }

    #[test]
    fn links_escape_what_a_fragment_cannot_hold() {
        assert_eq!(
            link("!a:x", "$b/c?d#e f"),
            "https://matrix.to/#/!a:x/$b%2Fc%3Fd%23e%20f"
        );
    }
}
