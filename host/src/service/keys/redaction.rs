//! Redaction: what survives of an event once redacted, by its room version's rules
//! ([`crate::service::room_version::Redaction`]). Reference hashes and signatures are computed
//! over the redacted form, and a redacted event is served to clients in it.

use serde_json::{Map, Value};

use crate::service::room_version::Redaction;

/// The redacted copy of a full event (PDU or client event).
pub fn redact(event: &Value, rules: &Redaction) -> Value {
    let Some(obj) = event.as_object() else {
        return event.clone();
    };
    let event_type = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    for (k, v) in obj {
        if rules.top_level.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    let content = obj
        .get("content")
        .and_then(Value::as_object)
        .map(|c| redact_content(event_type, c, rules))
        .unwrap_or_default();
    out.insert("content".into(), Value::Object(content));
    Value::Object(out)
}

pub(crate) fn redact_content(
    event_type: &str,
    content: &Map<String, Value>,
    rules: &Redaction,
) -> Map<String, Value> {
    let keep = rules.kept_content(event_type);
    content
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::room_version::V10;
    use serde_json::json;

    #[test]
    fn message_content_is_emptied() {
        let e = json!({"type": "m.room.message", "content": {"body": "hi"}, "sender": "@a:x", "unsigned": {"age": 1}});
        assert_eq!(
            redact(&e, &V10.redaction),
            json!({"type": "m.room.message", "content": {}, "sender": "@a:x"})
        );
    }

    #[test]
    fn member_keeps_membership_only() {
        let e = json!({"type": "m.room.member", "state_key": "@a:x", "content": {"membership": "join", "displayname": "A"}});
        assert_eq!(
            redact(&e, &V10.redaction)["content"],
            json!({"membership": "join"})
        );
    }

    #[test]
    fn power_levels_keep_their_levels() {
        let e = json!({"type": "m.room.power_levels", "content": {"ban": 50, "invite": 0, "users": {"@a:x": 100}}});
        assert_eq!(
            redact(&e, &V10.redaction)["content"],
            json!({"ban": 50, "users": {"@a:x": 100}})
        );
    }
}
