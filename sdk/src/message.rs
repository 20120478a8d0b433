//! Building message content: text with an HTML body, notices, emotes, replies with their
//! `m.relates_to`, and mentions (`m.mentions` plus a matrix.to pill).

use serde_json::{json, Map, Value};

use crate::events::MsgType;
use crate::types::Event;

/// The content of an `m.room.message` being built.
#[derive(Debug, Clone, PartialEq)]
pub struct Content(Map<String, Value>);

impl Content {
    /// A message of `msgtype` with `body`.
    pub fn new(msgtype: MsgType, body: impl Into<String>) -> Content {
        let mut m = Map::new();
        m.insert("msgtype".into(), json!(msgtype.as_str()));
        m.insert("body".into(), json!(body.into()));
        Content(m)
    }

    /// An `m.text` message.
    pub fn text(body: impl Into<String>) -> Content {
        Content::new(MsgType::Text, body)
    }

    /// An `m.notice` message.
    pub fn notice(body: impl Into<String>) -> Content {
        Content::new(MsgType::Notice, body)
    }

    /// An `m.emote` message.
    pub fn emote(body: impl Into<String>) -> Content {
        Content::new(MsgType::Emote, body)
    }

    /// An HTML body beside the plain one.
    pub fn html(mut self, html: impl Into<String>) -> Content {
        self.0
            .insert("format".into(), json!("org.matrix.custom.html"));
        self.0.insert("formatted_body".into(), json!(html.into()));
        self
    }

    /// Makes this a reply to `event` (`m.relates_to.m.in_reply_to`), mentioning its sender.
    pub fn reply_to(mut self, event: &Event) -> Content {
        self.0.insert(
            "m.relates_to".into(),
            json!({ "m.in_reply_to": { "event_id": event.event_id } }),
        );
        self.mention_only(&event.sender)
    }

    /// Mentions `user_id`: in `m.mentions` and, with an HTML body, as a pill before it.
    pub fn mention(mut self, user_id: &str) -> Content {
        // Escaped in the link too: ids of old rooms and other servers may hold `"` or `<`.
        let pill = format!(
            "<a href=\"https://matrix.to/#/{}\">{}</a>",
            escape_html(user_id),
            escape_html(user_id)
        );
        let html = match self.0.get("formatted_body").and_then(Value::as_str) {
            Some(h) => format!("{pill}: {h}"),
            None => format!(
                "{pill}: {}",
                escape_html(self.0["body"].as_str().unwrap_or_default())
            ),
        };
        let body = format!("{user_id}: {}", self.0["body"].as_str().unwrap_or_default());
        self.0.insert("body".into(), json!(body));
        self = self.html(html);
        self.mention_only(user_id)
    }

    fn mention_only(mut self, user_id: &str) -> Content {
        let mentions = self
            .0
            .entry("m.mentions")
            .or_insert_with(|| json!({ "user_ids": [] }));
        if let Some(ids) = mentions["user_ids"].as_array_mut() {
            if !ids.iter().any(|v| v == user_id) {
                ids.push(json!(user_id));
            }
        }
        self
    }

    /// Sets any other field of the content.
    pub fn with(mut self, key: &str, value: Value) -> Content {
        self.0.insert(key.into(), value);
        self
    }

    /// The content as JSON.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// At most `max_bytes` of `text`, cut at a character boundary.
pub fn clip(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// [`clip`], with `…` after the text when it was cut.
pub fn clip_marked(text: &str, max_bytes: usize) -> std::borrow::Cow<'_, str> {
    match clip(text, max_bytes) {
        whole if whole.len() == text.len() => whole.into(),
        cut => format!("{cut}…").into(),
    }
}

/// `<`, `>`, `&` and `"` escaped for an HTML body.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::event;

    #[test]
    fn a_reply_relates_to_its_event_and_mentions_its_sender() {
        let e = event("m.room.message", json!({"msgtype": "m.text", "body": "hi"}));
        let c = Content::notice("pong").reply_to(&e).into_value();
        assert_eq!(c["msgtype"], "m.notice");
        assert_eq!(
            c["m.relates_to"]["m.in_reply_to"]["event_id"],
            e.event_id.as_str()
        );
        assert_eq!(c["m.mentions"]["user_ids"][0], e.sender.as_str());
    }

    #[test]
    fn a_mention_adds_a_pill_and_escapes_html() {
        let c = Content::text("a<b").mention("@bob:x").into_value();
        assert_eq!(c["body"], "@bob:x: a<b");
        assert_eq!(
            c["formatted_body"],
            "<a href=\"https://matrix.to/#/@bob:x\">@bob:x</a>: a&lt;b"
        );
        assert_eq!(c["m.mentions"]["user_ids"], json!(["@bob:x"]));
    }
}
