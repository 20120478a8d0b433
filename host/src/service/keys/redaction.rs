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
    if rules.whole_content.contains(&event_type) {
        return content.clone();
    }
    let keep = rules.kept_content(event_type);
    let mut kept: Map<String, Value> = content
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (_, key, inner) in rules.nested.iter().filter(|(t, _, _)| *t == event_type) {
        if let Some(v) = content.get(*key).and_then(|o| o.get(*inner)) {
            let mut object = Map::new();
            object.insert((*inner).to_string(), v.clone());
            kept.insert((*key).to_string(), Value::Object(object));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::room_version::{V10, V11, V12};
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

    #[test]
    fn version_11_keeps_the_create_content_invite_level_and_redacts_but_not_origin() {
        let create = json!({"type": "m.room.create", "origin": "x", "membership": "join",
            "prev_state": [], "content": {"room_version": "11", "m.federate": false, "x": 1}});
        for v in [&V11, &V12] {
            let r = redact(&create, &v.redaction);
            assert_eq!(r["content"], create["content"], "{}", v.id);
            for key in ["origin", "membership", "prev_state"] {
                assert!(r.get(key).is_none(), "{key}");
            }
        }
        assert_eq!(
            redact(&create, &V10.redaction),
            json!({"type": "m.room.create", "origin": "x", "membership": "join",
                "prev_state": [], "content": {}})
        );
        let pl = json!({"type": "m.room.power_levels", "content": {"invite": 0, "x": 1}});
        assert_eq!(redact(&pl, &V11.redaction)["content"], json!({"invite": 0}));
        let redaction =
            json!({"type": "m.room.redaction", "content": {"redacts": "$e", "reason": "r"}});
        assert_eq!(
            redact(&redaction, &V11.redaction)["content"],
            json!({"redacts": "$e"})
        );
        assert_eq!(redact(&redaction, &V10.redaction)["content"], json!({}));
    }

    #[test]
    fn version_11_keeps_the_signed_part_of_a_third_party_invite_only() {
        let member = json!({"type": "m.room.member", "content": {"membership": "invite",
            "displayname": "A", "third_party_invite": {"display_name": "a", "signed": {"token": "t"}}}});
        assert_eq!(
            redact(&member, &V11.redaction)["content"],
            json!({"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}})
        );
        assert_eq!(
            redact(&member, &V10.redaction)["content"],
            json!({"membership": "invite"})
        );
    }
}
