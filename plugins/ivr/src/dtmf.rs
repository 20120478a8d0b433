//! Where the caller's keys come from: `org.plugboard.call.dtmf` events (`call_id`,
//! `party_id`, `digits`, `version`), which a client sends for the keys pressed on its dial
//! pad during a call, or digits typed as a message into the call's room.

use serde_json::Value;

use crate::call::valid_voip_id;
use crate::menu::DTMF_KEYS;
use crate::session::MAX_KEYS;

/// The event type of a key press.
pub const EVENT_TYPE: &str = "org.plugboard.call.dtmf";

/// One `org.plugboard.call.dtmf` event's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// The call the keys were pressed in.
    pub call_id: String,
    /// The pressing party.
    pub party_id: Option<String>,
    /// The keys, upper case, in order.
    pub digits: String,
}

fn keys(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    (!upper.is_empty() && upper.len() <= MAX_KEYS && upper.chars().all(|c| DTMF_KEYS.contains(c)))
        .then_some(upper)
}

/// Reads a key-press event; an error says what is wrong with it.
pub fn parse(content: &Value) -> Result<Dtmf, String> {
    let call_id = match content.get("call_id") {
        Some(Value::String(s)) if valid_voip_id(s) => s.clone(),
        _ => return Err("call_id must be a VoIP id".into()),
    };
    let party_id = match content.get("party_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_voip_id(s) => Some(s.clone()),
        _ => return Err("party_id must be a VoIP id".into()),
    };
    match content.get("version") {
        Some(Value::String(_)) => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        _ => return Err("version must be \"1\" (or 0)".into()),
    }
    let digits = match content.get("digits") {
        Some(Value::String(s)) => keys(s)
            .ok_or_else(|| format!("digits must be 1 to {MAX_KEYS} of the keys {DTMF_KEYS}"))?,
        _ => return Err("digits must be a text of keys".into()),
    };
    Ok(Dtmf {
        call_id,
        party_id,
        digits,
    })
}

/// The keys of a message typed during a call: only digits, `*` and `#` (letters would be
/// taken from ordinary words), up to the length of a dial string.
pub fn typed(body: &str) -> Option<String> {
    let body = body.trim();
    if body
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        keys(body)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_press_event_reads_its_fields() {
        let d =
            parse(&json!({"call_id": "c1", "party_id": "p1", "digits": "12#a", "version": "1"}))
                .unwrap();
        assert_eq!(d.call_id, "c1");
        assert_eq!(d.party_id.as_deref(), Some("p1"));
        assert_eq!(d.digits, "12#A");
        assert!(parse(&json!({"call_id": "c1", "digits": "1", "version": 0})).is_ok());
    }

    #[test]
    fn malformed_key_presses_say_why() {
        for (content, why) in [
            (json!({"digits": "1", "version": "1"}), "call_id"),
            (
                json!({"call_id": "c 1", "digits": "1", "version": "1"}),
                "call_id",
            ),
            (
                json!({"call_id": "c1", "party_id": 5, "digits": "1", "version": "1"}),
                "party_id",
            ),
            (json!({"call_id": "c1", "digits": "1"}), "version"),
            (
                json!({"call_id": "c1", "digits": "1", "version": -1}),
                "version",
            ),
            (
                json!({"call_id": "c1", "digits": 1, "version": "1"}),
                "digits",
            ),
            (
                json!({"call_id": "c1", "digits": "", "version": "1"}),
                "digits",
            ),
            (
                json!({"call_id": "c1", "digits": "1x", "version": "1"}),
                "digits",
            ),
            (
                json!({"call_id": "c1", "digits": "1".repeat(33), "version": "1"}),
                "digits",
            ),
        ] {
            let e = parse(&content).unwrap_err();
            assert!(e.starts_with(why), "{content}: {e}");
        }
    }

    #[test]
    fn typed_digits_are_only_keys() {
        assert_eq!(typed(" 1 ").as_deref(), Some("1"));
        assert_eq!(typed("12*#").as_deref(), Some("12*#"));
        assert_eq!(typed("A"), None);
        assert_eq!(typed("1 2"), None);
        assert_eq!(typed("hello"), None);
        assert_eq!(typed(""), None);
        assert_eq!(typed(&"1".repeat(33)), None);
    }
}
