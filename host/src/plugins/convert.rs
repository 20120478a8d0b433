//! The server's JSON events and transactions as the WIT records plugins receive.

use serde_json::Value;

use super::bindings::{
    DeviceKeyState, EphemeralEvent, Event, Extras, ToDeviceMessage, Transaction,
};
use crate::service::appservice::delivery::e2ee as keys;
use crate::service::appservice::registration::CompiledNamespaces;

/// A client-format event as the WIT `event` record; `own` tells which senders are the
/// plugin's own users.
pub(crate) fn event(e: &Value, own: &CompiledNamespaces) -> Event {
    let text = |key: &str| e[key].as_str().unwrap_or_default().to_string();
    let sender = text("sender");
    Event {
        event_id: text("event_id"),
        room_id: text("room_id"),
        from_own_user: own.is_own_user(&sender),
        sender,
        event_type: text("type"),
        state_key: e["state_key"].as_str().map(str::to_string),
        origin_server_ts: e["origin_server_ts"].as_u64().unwrap_or(0),
        content: e
            .get("content")
            .map_or_else(|| "{}".to_string(), Value::to_string),
        json: e.to_string(),
    }
}

/// `value`'s text at `key`, empty when there is none.
fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

/// The to-device messages of a transaction body (MSC2409's key).
fn to_device(body: &Value) -> Vec<ToDeviceMessage> {
    let messages = body[keys::TO_DEVICE].as_array().map(Vec::as_slice);
    messages
        .unwrap_or_default()
        .iter()
        .map(|m| ToDeviceMessage {
            sender: text(m, "sender"),
            event_type: text(m, "type"),
            content: m
                .get("content")
                .map_or_else(|| "{}".to_string(), Value::to_string),
            to_user_id: text(m, "to_user_id"),
            to_device_id: text(m, "to_device_id"),
        })
        .collect()
}

/// The key state of the devices a transaction body names (MSC3202's keys), by user and
/// device.
fn device_keys(body: &Value) -> Vec<DeviceKeyState> {
    let mut out = Vec::new();
    let Some(users) = body[keys::ONE_TIME_KEYS_COUNT].as_object() else {
        return out;
    };
    for (user, devices) in users {
        for (device, counts) in devices.as_object().into_iter().flatten() {
            let counts = counts.as_object().into_iter().flatten();
            let fallback = body[keys::UNUSED_FALLBACK_KEY_TYPES][user][device].as_array();
            out.push(DeviceKeyState {
                user_id: user.clone(),
                device_id: device.clone(),
                one_time_key_counts: counts
                    .map(|(alg, n)| (alg.clone(), n.as_u64().unwrap_or(0) as u32))
                    .collect(),
                unused_fallback_key_types: fallback
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            });
        }
    }
    out
}

/// What a transaction body carries for an encrypting plugin (to-device messages, device
/// lists, key state: nothing unless its manifest sets `e2ee`), as `e2ee.transaction-extras`
/// answers it.
pub(crate) fn extras(body: &Value) -> Extras {
    let device_lists_changed = body[keys::DEVICE_LISTS]["changed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    Extras {
        to_device: to_device(body),
        device_lists_changed,
        device_keys: device_keys(body),
    }
}

/// An appservice transaction body (`events`, `ephemeral`) as the WIT `transaction`.
pub fn transaction(txn_id: &str, body: &Value, own: &CompiledNamespaces) -> Transaction {
    let events = body["events"]
        .as_array()
        .map(|a| a.iter().map(|e| event(e, own)).collect())
        .unwrap_or_default();
    let ephemeral = body["ephemeral"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| EphemeralEvent {
                    event_type: e["type"].as_str().unwrap_or_default().to_string(),
                    room_id: e["room_id"].as_str().unwrap_or_default().to_string(),
                    content: e
                        .get("content")
                        .map_or_else(|| "{}".to_string(), Value::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    Transaction {
        txn_id: txn_id.to_string(),
        events,
        ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::service::appservice::registration::{Origin, Registration};

    fn own() -> CompiledNamespaces {
        let text = "id: p\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\n\
                    namespaces:\n  users: []\n";
        let reg = Registration::from_yaml(text, Origin::Plugin("p".into())).unwrap();
        CompiledNamespaces::compile(&reg, "x").unwrap()
    }

    #[test]
    fn a_body_without_encryption_keys_has_no_extras() {
        let body = json!({"events": [], "ephemeral": []});
        assert_eq!(transaction("7", &body, &own()).txn_id, "7");
        let t = extras(&body);
        assert!(t.to_device.is_empty() && t.device_lists_changed.is_empty());
        assert!(t.device_keys.is_empty());
    }

    #[test]
    fn the_extras_are_the_to_device_messages_device_lists_and_key_state_of_the_body() {
        let body = json!({
            "events": [],
            keys::TO_DEVICE: [{"type": "m.test", "sender": "@a:x", "content": {"n": 1},
                               "to_user_id": "@bot:x", "to_device_id": "D"}],
            keys::DEVICE_LISTS: {"changed": ["@a:x"], "left": []},
            keys::ONE_TIME_KEYS_COUNT: {"@bot:x": {"D": {"signed_curve25519": 3}}},
            keys::UNUSED_FALLBACK_KEY_TYPES: {"@bot:x": {"D": ["signed_curve25519"]}},
        });
        let t = extras(&body);
        let m = &t.to_device[..];
        assert_eq!(m.len(), 1);
        assert_eq!(
            (&*m[0].sender, &*m[0].event_type, &*m[0].content),
            ("@a:x", "m.test", r#"{"n":1}"#)
        );
        assert_eq!((&*m[0].to_user_id, &*m[0].to_device_id), ("@bot:x", "D"));
        assert_eq!(t.device_lists_changed, ["@a:x"]);
        let k = &t.device_keys[..];
        assert_eq!(k.len(), 1);
        assert_eq!((&*k[0].user_id, &*k[0].device_id), ("@bot:x", "D"));
        assert_eq!(k[0].one_time_key_counts, [("signed_curve25519".into(), 3)]);
        assert_eq!(k[0].unused_fallback_key_types, ["signed_curve25519"]);
    }
}
