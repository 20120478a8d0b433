//! What a new event may hold: integers within the spec's range everywhere (canonical JSON,
//! which room version 10 hashes and signs, stops at 2^53 - 1, and so do the JSON numbers of
//! every JavaScript client), the spec's size limit on state keys, and the contents of the
//! event types the server interprets (membership, join rules, history visibility, guest
//! access, power levels, name, topic, aliases, avatar, redaction reason). Checked once, for
//! every event any client, plugin or room creation builds, before the auth rules look at it.
//!
//! Numbers with a fraction or an exponent stay allowed in free content and are kept as
//! written: the 2015 talk's payloads (the Unity stickmen) are "any JSON" and read back
//! byte for byte. Strict canonical JSON would refuse them; where the server reads a number
//! (power levels) it must be an integer.
//!
//! A wrong JSON shape (a missing field, a number where a string belongs) is `M_BAD_JSON`; a
//! value of the right type that the spec does not allow is `M_INVALID_PARAM`.

use serde_json::{Map, Value};

use super::power_levels::invalid_content;
use crate::service::identifiers::{check_mxc_uri, parse_alias, MAX_ID_BYTES};
use crate::service::text::{check_line, check_text, MAX_DISPLAYNAME_BYTES, MAX_ROOM_NAME_BYTES};
use crate::service::{Error, Result};

use super::values::{GuestAccess, HistoryVisibility, JoinRule, Membership};

/// The largest integer canonical JSON may hold; the smallest is its negation.
pub(crate) const MAX_CANONICAL_INT: i64 = (1 << 53) - 1;

/// Checks a new event's content (an object) of type `kind` with `state_key` (`None` for a
/// message-like event).
pub fn check(kind: &str, state_key: Option<&str>, content: &Map<String, Value>) -> Result<()> {
    if let Some(sk) = state_key {
        // The spec's size limit (Synapse answers it with 413 too).
        if sk.len() > MAX_ID_BYTES {
            return Err(Error::TooLarge(format!(
                "a state key is at most {MAX_ID_BYTES} bytes; this one is {}",
                sk.len()
            )));
        }
    }
    check_numbers(content)?;
    let fields = Fields { kind, content };
    match (kind, state_key) {
        ("m.room.member", Some(_)) => {
            fields.one_of("membership", Membership::NAMES, true)?;
            if let Some(name) = fields.string("displayname", false)? {
                check_line("displayname", name, MAX_DISPLAYNAME_BYTES)?;
            }
            fields.string("avatar_url", false)?;
            fields.bool("is_direct")?;
            if let Some(reason) = fields.string("reason", false)? {
                check_text("reason", reason)?;
            }
        }
        ("m.room.join_rules", Some("")) => {
            fields.one_of("join_rule", JoinRule::NAMES, true)?;
            if let Some(allow) = content.get("allow") {
                let rules = allow.as_array().filter(|a| a.iter().all(Value::is_object));
                if rules.is_none() {
                    return Err(fields.bad("allow", "a list of objects"));
                }
            }
        }
        ("m.room.history_visibility", Some("")) => {
            fields.one_of("history_visibility", HistoryVisibility::NAMES, true)?;
        }
        ("m.room.guest_access", Some("")) => {
            fields.one_of("guest_access", GuestAccess::NAMES, true)?;
        }
        ("m.room.power_levels", Some("")) => {
            if let Some(why) = invalid_content(&Value::Object(content.clone())) {
                return Err(Error::BadJson(format!("m.room.power_levels: {why}")));
            }
        }
        ("m.room.name", Some("")) => {
            if let Some(name) = fields.string("name", true)? {
                check_line("the room name", name, MAX_ROOM_NAME_BYTES)?;
            }
        }
        ("m.room.topic", Some("")) => {
            if let Some(topic) = fields.string("topic", true)? {
                check_text("the topic", topic)?;
            }
        }
        ("m.room.canonical_alias", Some("")) => {
            if let Some(alias) = fields.string("alias", false)? {
                parse_alias(alias)?;
            }
            if let Some(alt) = content.get("alt_aliases") {
                let Some(list) = alt.as_array() else {
                    return Err(fields.bad("alt_aliases", "a list of aliases"));
                };
                for a in list {
                    parse_alias(
                        a.as_str()
                            .ok_or_else(|| fields.bad("alt_aliases", "a list of aliases"))?,
                    )?;
                }
            }
        }
        ("m.room.avatar", Some("")) => {
            // An empty URL is how a client takes the avatar away.
            if let Some(url) = fields.string("url", false)?.filter(|u| !u.is_empty()) {
                check_mxc_uri(url)?;
            }
        }
        ("m.room.create", Some("")) => {
            fields.bool("m.federate")?;
            fields.string("type", false)?;
            if content.get("predecessor").is_some_and(|p| !p.is_object()) {
                return Err(fields.bad("predecessor", "an object"));
            }
        }
        ("m.room.redaction", None) => {
            if let Some(reason) = fields.string("reason", false)? {
                check_text("reason", reason)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The content's fields, read with the error a client gets for a wrong one.
struct Fields<'a> {
    kind: &'a str,
    content: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn bad(&self, key: &str, want: &str) -> Error {
        Error::BadJson(format!("{}: `{key}` must be {want}", self.kind))
    }

    /// A string field; `null` counts as absent (the spec's "string or null" fields).
    fn string(&self, key: &str, required: bool) -> Result<Option<&'a str>> {
        match self.content.get(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) if !required => Ok(None),
            _ => Err(self.bad(key, "a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<()> {
        match self.content.get(key) {
            None | Some(Value::Bool(_)) => Ok(()),
            _ => Err(self.bad(key, "true or false")),
        }
    }

    /// A string field whose value is one of `allowed`.
    fn one_of(&self, key: &str, allowed: &[&str], required: bool) -> Result<()> {
        match self.string(key, required)? {
            Some(v) if !allowed.contains(&v) => Err(Error::InvalidParam(format!(
                "{}: `{key}` must be one of {}, not '{}'",
                self.kind,
                allowed.join(", "),
                v.escape_debug()
            ))),
            _ => Ok(()),
        }
    }
}

/// Every integer in `content` is one canonical JSON can hold.
fn check_numbers(content: &Map<String, Value>) -> Result<()> {
    let mut stack: Vec<&Value> = content.values().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) if !allowed_number(n) => {
                return Err(Error::BadJson(format!(
                    "event content may hold integers from -{MAX_CANONICAL_INT} to \
                     {MAX_CANONICAL_INT} only (canonical JSON), not {n}"
                )))
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Ok(())
}

/// An integer canonical JSON can hold: in ±(2^53 - 1).
pub(crate) fn canonical_int(n: &serde_json::Number) -> bool {
    n.as_i64()
        .is_some_and(|i| (-MAX_CANONICAL_INT..=MAX_CANONICAL_INT).contains(&i))
}

/// A number event content may hold: a canonical integer, or a number written with a
/// fraction or an exponent (kept as written, see the module's docs).
pub fn allowed_number(n: &serde_json::Number) -> bool {
    n.to_string().contains(['.', 'e', 'E']) || canonical_int(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(kind: &str, state_key: Option<&str>, content: Value) -> Result<()> {
        check(kind, state_key, content.as_object().expect("an object"))
    }

    fn errcode(r: Result<()>) -> &'static str {
        r.err().map(|e| e.errcode()).unwrap_or("accepted")
    }

    #[test]
    fn out_of_range_integers_are_bad_json_anywhere_in_content() {
        let huge: Value = serde_json::from_str("9007199254740992").unwrap();
        let huger: Value = serde_json::from_str("123456789012345678901234567890").unwrap();
        for content in [
            json!({"n": huge}),
            json!({"deep": [{"n": huger}]}),
            json!({"n": -9_007_199_254_740_992_i64}),
        ] {
            assert_eq!(
                errcode(ok("org.x", None, content.clone())),
                "M_BAD_JSON",
                "{content}"
            );
        }
        assert!(ok(
            "org.x",
            None,
            json!({"n": 9_007_199_254_740_991_i64, "m": -9_007_199_254_740_991_i64})
        )
        .is_ok());
    }

    #[test]
    fn numbers_with_a_fraction_or_an_exponent_are_kept_as_written() {
        let v: Value = serde_json::from_str(r#"{"g": -9.81, "s": 1.0, "e": 1e400}"#).unwrap();
        assert!(ok("org.matrix.demos.unity.stickmen", None, v).is_ok());
    }

    #[test]
    fn memberships_are_strings_of_the_spec() {
        let m = |c| errcode(ok("m.room.member", Some("@a:x"), c));
        assert_eq!(m(json!({"membership": "join"})), "accepted");
        assert_eq!(m(json!({})), "M_BAD_JSON");
        assert_eq!(m(json!({"membership": 1})), "M_BAD_JSON");
        assert_eq!(m(json!({"membership": "joined"})), "M_INVALID_PARAM");
        assert_eq!(
            m(json!({"membership": "join", "displayname": 5})),
            "M_BAD_JSON"
        );
        assert_eq!(
            m(json!({"membership": "join", "displayname": "a\u{0}"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            m(json!({"membership": "join", "displayname": null})),
            "accepted"
        );
        assert_eq!(
            m(json!({"membership": "leave", "reason": "bye\u{0}"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            m(json!({"membership": "invite", "is_direct": "yes"})),
            "M_BAD_JSON"
        );
    }

    #[test]
    fn join_rules_history_visibility_and_guest_access_take_their_enums() {
        let e = |kind, c| errcode(ok(kind, Some(""), c));
        assert_eq!(
            e("m.room.join_rules", json!({"join_rule": "public"})),
            "accepted"
        );
        assert_eq!(
            e("m.room.join_rules", json!({"join_rule": 5})),
            "M_BAD_JSON"
        );
        assert_eq!(
            e("m.room.join_rules", json!({"join_rule": "open"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(e("m.room.join_rules", json!({})), "M_BAD_JSON");
        assert_eq!(
            e(
                "m.room.join_rules",
                json!({"join_rule": "restricted", "allow": [1]})
            ),
            "M_BAD_JSON"
        );
        assert_eq!(
            e(
                "m.room.history_visibility",
                json!({"history_visibility": "everyone"})
            ),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            e("m.room.guest_access", json!({"guest_access": true})),
            "M_BAD_JSON"
        );
        // Another state key is another, uninterpreted event.
        assert_eq!(
            errcode(ok("m.room.join_rules", Some("x"), json!({"join_rule": 5}))),
            "accepted"
        );
    }

    #[test]
    fn power_levels_must_be_integers() {
        let e = |c| errcode(ok("m.room.power_levels", Some(""), c));
        assert_eq!(e(json!({"ban": 50, "users": {"@a:x": 100}})), "accepted");
        assert_eq!(e(json!({"ban": "50"})), "M_BAD_JSON");
        assert_eq!(e(json!({"users": {"@a:x": 1.5}})), "M_BAD_JSON");
    }

    #[test]
    fn names_topics_aliases_and_avatars_are_checked() {
        let e = |kind, c| errcode(ok(kind, Some(""), c));
        assert_eq!(e("m.room.name", json!({"name": "Lobby"})), "accepted");
        assert_eq!(e("m.room.name", json!({"name": ["x"]})), "M_BAD_JSON");
        assert_eq!(e("m.room.name", json!({"name": "a\nb"})), "M_INVALID_PARAM");
        assert_eq!(
            e("m.room.name", json!({"name": "n".repeat(256)})),
            "M_INVALID_PARAM"
        );
        assert_eq!(e("m.room.topic", json!({"topic": "a\nb"})), "accepted");
        assert_eq!(
            e("m.room.topic", json!({"topic": "\u{0}"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            e("m.room.canonical_alias", json!({"alias": "#a:x"})),
            "accepted"
        );
        assert_eq!(
            e("m.room.canonical_alias", json!({"alias": "a"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            e("m.room.canonical_alias", json!({"alt_aliases": "#a:x"})),
            "M_BAD_JSON"
        );
        assert_eq!(
            e("m.room.avatar", json!({"url": "http://x/y"})),
            "M_INVALID_PARAM"
        );
        assert_eq!(
            e("m.room.create", json!({"m.federate": "no"})),
            "M_BAD_JSON"
        );
    }

    #[test]
    fn state_keys_over_255_bytes_are_too_large() {
        let key = "k".repeat(256);
        assert_eq!(errcode(ok("org.x", Some(&key), json!({}))), "M_TOO_LARGE");
        assert_eq!(
            errcode(ok("org.x", Some(&key[..255]), json!({}))),
            "accepted"
        );
    }

    #[test]
    fn message_contents_are_not_interpreted_so_not_checked() {
        // Plugins are tested against malformed messages; the server leaves them be.
        let e = |c| errcode(ok("m.room.message", None, c));
        assert_eq!(
            e(json!({"msgtype": "org.custom", "body": "nul\u{0}ok"})),
            "accepted"
        );
        assert_eq!(e(json!({"msgtype": 5, "body": {"nested": 1}})), "accepted");
    }
}
