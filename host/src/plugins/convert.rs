//! The server's JSON events and transactions as the WIT records plugins receive.

use serde_json::Value;

use super::bindings::{EphemeralEvent, Event, Transaction};
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
