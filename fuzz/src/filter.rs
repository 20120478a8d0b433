//! Filters (`service/sync/filter.rs`): any JSON is read into a sync filter or refused with
//! `M_BAD_JSON` / `M_NOT_JSON`, without a panic; a filter read is within the server's bounds
//! (a timeline limit of 1 to 1000, at most 256 entries a list) and matches events without a
//! panic, and a type it lists without a wildcard matches that type.

use plugboard::service::sync::filter::{EventFilter, SyncFilter};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde_json::{json, Value};

use crate::{json_value, text, Target};

pub const TARGET: Target = Target {
    name: "filter",
    check,
    dictionary: &[
        b"\"room\":",
        b"\"timeline\":",
        b"\"state\":",
        b"\"ephemeral\":",
        b"\"account_data\":",
        b"\"presence\":",
        b"\"limit\":",
        b"\"types\":",
        b"\"not_types\":",
        b"\"senders\":",
        b"\"not_senders\":",
        b"\"rooms\":",
        b"\"not_rooms\":",
        b"\"include_leave\":",
        b"\"lazy_load_members\":",
        b"\"event_format\":",
        b"\"event_fields\":",
        b"\"m.*\"",
        b"\"*\"",
        b"\"@a:x\"",
        b"\"!r:x\"",
        b"0",
        b"-1",
        b"1001",
        b"18446744073709551616",
        b"1.5",
        b"true",
        b"null",
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b":",
    ],
    generate: Some(generate),
};

fn generate() -> BoxedStrategy<Vec<u8>> {
    let list = prop::collection::vec(
        prop_oneof![
            "[a-z.*]{0,10}".prop_map(Value::String),
            Just(json!("@a:x")),
            Just(json!("!r:x")),
            json_value(1),
        ],
        0..4,
    )
    .boxed();
    let event_filter = (
        prop::option::of(prop_oneof![
            (0u64..2000).prop_map(Value::from),
            json_value(1)
        ]),
        prop::option::of(list.clone()),
        prop::option::of(list.clone()),
        prop::option::of(list),
    )
        .prop_map(|(limit, types, senders, rooms)| {
            let mut f = json!({});
            for (k, v) in [
                ("limit", limit),
                ("types", types.map(Value::Array)),
                ("senders", senders.map(Value::Array)),
                ("rooms", rooms.map(Value::Array)),
            ] {
                if let Some(v) = v {
                    f[k] = v;
                }
            }
            f
        })
        .boxed();
    (
        event_filter.clone(),
        event_filter,
        prop::option::of(json_value(1)),
    )
        .prop_map(|(timeline, account_data, include_leave)| {
            let mut f = json!({"room": {"timeline": timeline}, "account_data": account_data});
            if let Some(v) = include_leave {
                f["room"]["include_leave"] = v;
            }
            serde_json::to_vec(&f).unwrap_or_default()
        })
        .boxed()
}

pub fn check(input: &[u8]) -> Result<(), String> {
    let Some(text) = text(input) else {
        return Ok(());
    };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    let _ = EventFilter::parse(&value);
    let filter = match SyncFilter::parse(&value) {
        Ok(f) => f,
        Err(e) => {
            return match e.errcode() {
                "M_BAD_JSON" | "M_NOT_JSON" => Ok(()),
                other => Err(format!("refused with {other}: {e}")),
            }
        }
    };
    let limit = filter.timeline_limit();
    if !(1..=1000).contains(&limit) {
        return Err(format!("a timeline limit of {limit}"));
    }
    for f in [
        &filter.timeline,
        &filter.state,
        &filter.ephemeral,
        &filter.account_data,
        &filter.room_account_data,
    ] {
        let lists = [
            f.types.as_ref().map_or(0, Vec::len),
            f.not_types.len(),
            f.senders.as_ref().map_or(0, Vec::len),
            f.not_senders.len(),
        ];
        if lists.iter().any(|n| *n > 256) {
            return Err(format!("a list longer than 256: {lists:?}"));
        }
        for t in f.types.iter().flatten() {
            let _ = f.matches(t, "@a:x");
            let exact = !t.contains('*') && !f.not_types.iter().any(|n| n.contains('*') || n == t);
            if exact && !f.matches_type(t) {
                return Err(format!("the type {t:?} it lists does not match itself"));
            }
        }
        for kind in ["m.room.message", "", "m.room.member", "\u{0}*"] {
            let _ = f.matches(kind, "@a:x");
        }
    }
    let _ = filter.includes_room("!r:x");
    Ok(())
}
