//! The redaction algorithm of room versions 9 and 10: what survives of an event once
//! redacted. Reference hashes and signatures are computed over the redacted form, and a
//! redacted event is served to clients in it.

use serde_json::{Map, Value};

const KEPT_TOP_LEVEL: &[&str] = &[
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "prev_state",
    "auth_events",
    "origin",
    "origin_server_ts",
    "membership",
];

/// The content keys an event type keeps through redaction.
fn kept_content_keys(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "m.room.member" => &["membership", "join_authorised_via_users_server"],
        "m.room.create" => &["creator"],
        "m.room.join_rules" => &["join_rule", "allow"],
        "m.room.power_levels" => &[
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.history_visibility" => &["history_visibility"],
        _ => &[],
    }
}

/// The redacted copy of a full event (PDU or client event).
pub fn redact(event: &Value) -> Value {
    let Some(obj) = event.as_object() else {
        return event.clone();
    };
    let event_type = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    for (k, v) in obj {
        if KEPT_TOP_LEVEL.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let content = obj
        .get("content")
        .and_then(Value::as_object)
        .map(|c| redact_content(event_type, c))
        .unwrap_or_default();
    out.insert("content".into(), Value::Object(content));
    Value::Object(out)
}

pub fn redact_content(event_type: &str, content: &Map<String, Value>) -> Map<String, Value> {
    let keep = kept_content_keys(event_type);
    content
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_content_is_emptied() {
        let e = json!({"type": "m.room.message", "content": {"body": "hi"}, "sender": "@a:x", "unsigned": {"age": 1}});
        assert_eq!(
            redact(&e),
            json!({"type": "m.room.message", "content": {}, "sender": "@a:x"})
        );
    }

    #[test]
    fn member_keeps_membership_only() {
        let e = json!({"type": "m.room.member", "state_key": "@a:x", "content": {"membership": "join", "displayname": "A"}});
        assert_eq!(redact(&e)["content"], json!({"membership": "join"}));
    }

    #[test]
    fn power_levels_keep_their_levels() {
        let e = json!({"type": "m.room.power_levels", "content": {"ban": 50, "invite": 0, "users": {"@a:x": 100}}});
        assert_eq!(
            redact(&e)["content"],
            json!({"ban": 50, "users": {"@a:x": 100}})
        );
    }
}
