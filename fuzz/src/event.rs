//! Events and PDUs (`service/rooms/pdu.rs`, `content.rs`, `auth.rs`, `keys/redaction.rs`,
//! `identifiers.rs`): a stored event's JSON, whatever it holds, is read into a `Pdu` or
//! refused without a panic, and is then served in every client form; redaction is
//! idempotent and leaves the event id alone; the new-event content rules and the auth rules
//! decide without a panic, and content they accept holds canonical integers only; an identifier that
//! parses is within the spec's grammar and length.

use plugboard::service::identifiers::{
    check_event_id, parse_alias, parse_room_id, parse_user_id, valid_server_name,
};
use plugboard::service::keys::redaction::redact;
use plugboard::service::keys::signing::reference_event_id;
use plugboard::service::room_version;
use plugboard::service::rooms::auth::{self, Candidate};
use plugboard::service::rooms::content::{self, allowed_number};
use plugboard::service::rooms::pdu::Pdu;
use plugboard::service::rooms::power_levels::{Creators, PowerLevels};
use plugboard::service::rooms::state::RoomState;
use plugboard::storage::events::EventRow;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde_json::{json, Value};

use crate::{json_value, text, Target};

pub const TARGET: Target = Target {
    name: "event",
    check,
    dictionary: &[
        b"\"type\":",
        b"\"content\":",
        b"\"state_key\":",
        b"\"sender\":",
        b"\"room_id\":",
        b"\"m.room.member\"",
        b"\"m.room.power_levels\"",
        b"\"m.room.join_rules\"",
        b"\"m.room.create\"",
        b"\"m.room.redaction\"",
        b"\"membership\":",
        b"\"join_rule\":",
        b"\"users\":",
        b"{\"@a:x\":100}",
        b"\"@a:x\"",
        b"\"!r:x\"",
        b"\"$e\"",
        b"1.5",
        b"9007199254740992",
        b"-9007199254740991",
        b"\"\\u0000\"",
        b"null",
        b"[]",
        b"{}",
        b",",
        b":",
    ],
    generate: Some(generate),
};

fn generate() -> BoxedStrategy<Vec<u8>> {
    let kinds = prop::sample::select(vec![
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.topic",
        "m.room.canonical_alias",
        "m.room.create",
        "m.room.message",
        "m.room.redaction",
        "org.example",
    ]);
    let state_key = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("@a:x".to_string())),
        "[ -~]{0,8}".prop_map(Some),
    ];
    (kinds, state_key, json_value(3), json_value(2))
        .prop_map(|(kind, state_key, content, extra)| {
            let mut ev = json!({
                "type": kind, "sender": "@a:x", "room_id": "!r:x", "content": content,
                "origin_server_ts": 1, "depth": 2, "prev_events": [], "auth_events": [],
                "unsigned": extra,
            });
            if let Some(sk) = state_key {
                ev["state_key"] = json!(sk);
            }
            serde_json::to_vec(&ev).unwrap_or_default()
        })
        .boxed()
}

pub fn check(input: &[u8]) -> Result<(), String> {
    let Some(text) = text(input) else {
        return Ok(());
    };
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let field = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // The row as storage would hand it back: the columns copied from the JSON, which is
    // stored whole (and may not even parse, in a damaged database).
    let row = EventRow {
        stream: 7,
        event_id: field("event_id").unwrap_or_else(|| "$e".into()),
        room_id: field("room_id").unwrap_or_default(),
        sender: field("sender").unwrap_or_default(),
        kind: field("type").unwrap_or_default(),
        state_key: field("state_key"),
        json: text.to_string(),
        redacted_by: field("redacted_by"),
        txn_device: Some("DEV".into()),
        txn_id: field("txn_id"),
        history_visibility: field("history_visibility"),
        room_version: Some("10".into()),
    };
    check_identifiers(&row)?;
    let Ok(pdu) = Pdu::try_from(row) else {
        return Ok(());
    };
    serve(&pdu)?;
    let Some(value) = parsed else {
        return Ok(());
    };
    check_redaction(&value)?;
    if let Some(c) = value.get("content").and_then(Value::as_object) {
        check_new_event(&pdu, c)?;
    }
    Ok(())
}

/// An identifier that parses is one the spec allows.
fn check_identifiers(row: &EventRow) -> Result<(), String> {
    type Parse = fn(&str) -> plugboard::service::Result<(&str, &str)>;
    let parsers: [(&String, char, Parse); 3] = [
        (&row.sender, '@', parse_user_id),
        (&row.room_id, '!', parse_room_id),
        (&row.room_id, '#', parse_alias),
    ];
    for (id, sigil, parse) in parsers {
        if let Ok((local, server)) = parse(id) {
            // A room version 12 room id has no server: `!` and a 43-character URL-safe hash.
            let v12_room_id = sigil == '!'
                && server.is_empty()
                && local.len() == 43
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let server_ok = valid_server_name(server) || v12_room_id;
            if id.len() > 255 || !id.starts_with(sigil) || !server_ok {
                return Err(format!("{id:?} parsed as ({local:?}, {server:?})"));
            }
        }
    }
    if check_event_id(&row.event_id).is_ok()
        && (row.event_id.len() > 255 || row.event_id.chars().any(char::is_control))
    {
        return Err(format!("{:?} passed as an event id", row.event_id));
    }
    Ok(())
}

/// Every form the event is served in is made without a panic, and is the object it should be.
fn serve(pdu: &Pdu) -> Result<(), String> {
    let viewer = Some((pdu.sender.as_str(), "DEV"));
    let client = pdu.to_client(viewer, None, true);
    for key in [
        "content",
        "event_id",
        "origin_server_ts",
        "sender",
        "type",
        "unsigned",
    ] {
        if client.get(key).is_none() {
            return Err(format!("the client event lacks {key}: {client}"));
        }
    }
    let _ = pdu.to_client(None, Some(json!({"event_id": "$r"})), false);
    let _ = pdu.to_stripped();
    let _ = pdu.membership();
    let mut redacted = pdu.clone();
    redacted.redact("$r".into());
    let _ = redacted.to_client(viewer, Some(json!({})), true);
    Ok(())
}

/// Redacting twice is redacting once, and the event id (a hash of the redacted form) does
/// not change with redaction, under every supported room version's rules.
fn check_redaction(value: &Value) -> Result<(), String> {
    for version in room_version::SUPPORTED {
        let once = redact(value, &version.redaction);
        let twice = redact(&once, &version.redaction);
        if once != twice {
            return Err(format!(
                "v{}: redaction is not idempotent: {once} then {twice}",
                version.id
            ));
        }
        if value.is_object()
            && reference_event_id(value, version) != reference_event_id(&once, version)
        {
            return Err(format!("v{}: redaction changed the event id", version.id));
        }
    }
    Ok(())
}

/// The content rules and the auth rules decide on the content as a new event's, without a
/// panic; what the content rules accept holds no integer past canonical JSON's range.
fn check_new_event(pdu: &Pdu, c: &serde_json::Map<String, Value>) -> Result<(), String> {
    let state_key = pdu.state_key.as_deref();
    let content_value = Value::Object(c.clone());
    let accepted = content::check(&pdu.kind, state_key, c).is_ok();
    if accepted {
        let mut stack = vec![&content_value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Number(n) if !allowed_number(n) => {
                    return Err(format!("accepted content holds the number {n}"))
                }
                Value::Array(a) => stack.extend(a),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    }
    let creators = Creators::new(vec![pdu.sender.clone()], false);
    let pl = PowerLevels::from_content(Some(&content_value), &creators);
    let _ = (pl.user_level(&pdu.sender), pl.event_level(&pdu.kind, true));
    // Against an empty room, and against a room whose state is this event on top of a
    // create event and the sender's join.
    let candidate = Candidate {
        room_id: "!r:x",
        kind: &pdu.kind,
        state_key,
        sender: &pdu.sender,
        content: &content_value,
    };
    let _ = auth::check(&candidate, &RoomState::default());
    let mut events = vec![
        stub(
            "m.room.create",
            "",
            json!({"creator": pdu.sender, "room_version": "10"}),
        ),
        stub(
            "m.room.member",
            pdu.sender.as_str(),
            json!({"membership": "join"}),
        ),
    ];
    if state_key.is_some() {
        events.push(pdu.clone());
    }
    let state: RoomState = events.into_iter().collect();
    let _ = auth::check(&candidate, &state);
    let _ = auth::power_levels(&state);
    let _ = auth::may_redact(&state, &pdu.sender, "@other:x");
    Ok(())
}

fn stub(kind: &str, key: &str, content: Value) -> Pdu {
    Pdu {
        stream: 1,
        event_id: format!("${kind}"),
        room_id: "!r:x".into(),
        sender: "@c:x".into(),
        kind: kind.into(),
        state_key: Some(key.into()),
        json: json!({ "content": content }),
        redacted_by: None,
        txn: None,
        history_visibility: None,
        version: plugboard::service::room_version::DEFAULT,
    }
}
