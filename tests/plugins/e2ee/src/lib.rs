//! A plugin for the end-to-end tests of `e2ee`: `POST /setup` makes device `PLUGDEV` of its
//! sender and uploads two one-time keys and a fallback key for it; each to-device message it
//! gets is kept and answered with one to all of the sender's devices (`m.answer`, with the
//! message's `n`); the key state of its transactions is kept. `GET /seen` shows what it kept.

use plugboard_sdk::prelude::*;
use plugboard_sdk::{e2ee, DeviceKeys, ToDevice};
use serde_json::{json, Value};

/// The device the plugin makes for its sender.
const DEVICE: &str = "PLUGDEV";

pub struct E2eeProbe;

impl Plugin for E2eeProbe {
    fn init(_config: &Config) -> Result<Self, Error> {
        Ok(E2eeProbe)
    }

    fn on_to_device(&mut self, m: &ToDevice) -> Result<(), Error> {
        let mut seen: Vec<Value> = kv::get_json("to_device")?.unwrap_or_default();
        seen.push(
            json!({"sender": m.sender, "type": m.event_type, "content": m.content,
                         "to_user_id": m.to_user_id, "to_device_id": m.to_device_id}),
        );
        kv::set_json("to_device", &seen)?;
        let n = m.content["n"].clone();
        let messages = json!({ m.sender.clone(): { "*": { "re": n } } });
        // The txn id is the message's own: a transaction delivered again sends nothing new.
        e2ee::send_to_device(
            Some(&m.to_user_id),
            &m.to_device_id,
            "m.answer",
            &format!("answer-{n}"),
            &messages,
        )
    }

    fn on_device_keys(&mut self, changed: &[String], keys: &[DeviceKeys]) -> Result<(), Error> {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| {
                let counts: serde_json::Map<String, Value> = k
                    .one_time_key_counts
                    .iter()
                    .map(|(alg, n)| (alg.clone(), json!(n)))
                    .collect();
                json!({"user_id": k.user_id, "device_id": k.device_id, "counts": counts,
                       "fallback": k.unused_fallback_key_types})
            })
            .collect();
        kv::set_json("keys", &json!({"changed": changed, "keys": keys}))
    }

    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        let answer = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/setup") => setup(),
            ("GET", "/seen") => seen(),
            _ => return HttpResponse::not_found(),
        };
        answer.unwrap_or_else(|e| HttpResponse::error(400, &e.errcode, &e.message))
    }
}

fn setup() -> Result<HttpResponse, Error> {
    let made = e2ee::create_device(None, DEVICE, Some("e2ee test plugin"))?;
    let keys = json!({
        "one_time_keys": {"signed_curve25519:AAA": {"key": "k1"},
                          "signed_curve25519:AAB": {"key": "k2"}},
        "fallback_keys": {"signed_curve25519:FFF": {"key": "f", "fallback": true}},
    });
    let counts = e2ee::upload_keys(None, DEVICE, &keys)?;
    Ok(HttpResponse::json(
        200,
        &json!({"made": made, "device_id": DEVICE, "counts": counts}),
    ))
}

fn seen() -> Result<HttpResponse, Error> {
    let to_device: Value = kv::get_json("to_device")?.unwrap_or(json!([]));
    let keys: Value = kv::get_json("keys")?.unwrap_or(Value::Null);
    Ok(HttpResponse::json(
        200,
        &json!({"to_device": to_device, "keys": keys}),
    ))
}

export_plugin!(E2eeProbe);
