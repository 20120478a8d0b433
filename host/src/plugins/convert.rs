//! The server's JSON events and transactions as the WIT records plugins receive.

use serde_json::Value;

use super::bindings::{DeviceKeyState, EphemeralEvent, Event, ToDeviceMessage, Transaction};
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

/// An appservice transaction body (`events`, `ephemeral`, and for a plugin with `e2ee` the
/// to-device messages, device lists and key state) as the WIT `transaction`.
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
    let device_lists_changed = body[keys::DEVICE_LISTS]["changed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    Transaction {
        txn_id: txn_id.to_string(),
        events,
        ephemeral,
        to_device: to_device(body),
        device_lists_changed,
        device_keys: device_keys(body),
    }
}
