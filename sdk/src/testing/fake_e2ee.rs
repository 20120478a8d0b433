//! The fake host's end-to-end encryption: the devices the plugin made for its users, the
//! one-time and fallback keys they uploaded, and the to-device messages the plugin sent, with
//! the real host's rules where a plugin could notice them (a device must exist to act as it,
//! a one-time key is claimed once and then the fallback key, a txn id sends once).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::types::Error;

/// A to-device message the plugin sent, one per addressed user and device (or `*`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentToDevice {
    /// The plugin's user who sent it.
    pub sender: String,
    /// The device it was sent from.
    pub sender_device: String,
    /// Its type.
    pub event_type: String,
    /// The user it is for.
    pub to_user_id: String,
    /// A device id, or `*`.
    pub to_device_id: String,
    /// Its content.
    pub content: Value,
}

/// One device's keys.
#[derive(Default)]
pub(super) struct Keys {
    device_keys: Option<Value>,
    /// `algorithm:key_id` → key, in claim order.
    one_time: BTreeMap<String, Value>,
    /// algorithm → (`algorithm:key_id`, key, used).
    fallback: BTreeMap<String, (String, Value, bool)>,
}

#[derive(Default)]
pub(super) struct FakeE2ee {
    /// (user, device) → its keys.
    pub(super) devices: BTreeMap<(String, String), Keys>,
    pub(super) sent: Vec<SentToDevice>,
    /// (user, device, txn id) of the sends made.
    txns: BTreeSet<(String, String, String)>,
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::new(
            "M_BAD_JSON",
            format!("{what} must be an object"),
        )),
        Err(e) => Err(Error::new("M_NOT_JSON", format!("{what} is not JSON: {e}"))),
    }
}

fn algorithm(key_id: &str) -> Result<&str, Error> {
    match key_id.split_once(':') {
        Some((alg, id)) if !alg.is_empty() && !id.is_empty() => Ok(alg),
        _ => Err(Error::invalid(format!(
            "key id {key_id} is not algorithm:key_id"
        ))),
    }
}

impl FakeE2ee {
    fn device(&mut self, user: &str, device: &str) -> Result<&mut Keys, Error> {
        self.devices
            .get_mut(&(user.to_string(), device.to_string()))
            .ok_or_else(|| Error::new("M_UNKNOWN_DEVICE", format!("{user} has no device {device}")))
    }

    pub(super) fn create_device(&mut self, user: &str, device: &str) -> bool {
        let key = (user.to_string(), device.to_string());
        if self.devices.contains_key(&key) {
            return false;
        }
        self.devices.insert(key, Keys::default());
        true
    }

    pub(super) fn delete_device(&mut self, user: &str, device: &str) -> Result<(), Error> {
        self.device(user, device)?;
        self.devices.remove(&(user.to_string(), device.to_string()));
        Ok(())
    }

    fn counts(&mut self, user: &str, device: &str) -> Result<Value, Error> {
        let keys = self.device(user, device)?;
        let mut counts = BTreeMap::from([("signed_curve25519".to_string(), 0)]);
        for id in keys.one_time.keys() {
            *counts.entry(algorithm(id)?.to_string()).or_insert(0) += 1;
        }
        Ok(json!({ "one_time_key_counts": counts }))
    }

    pub(super) fn upload(&mut self, user: &str, device: &str, text: &str) -> Result<Value, Error> {
        let body = object(text, "the key upload")?;
        let keys = self.device(user, device)?;
        if let Some(k) = body.get("device_keys") {
            keys.device_keys = Some(k.clone());
        }
        for (id, key) in body
            .get("one_time_keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            algorithm(id)?;
            keys.one_time.insert(id.clone(), key.clone());
        }
        for (id, key) in body
            .get("fallback_keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let alg = algorithm(id)?.to_string();
            keys.fallback.insert(alg, (id.clone(), key.clone(), false));
        }
        self.counts(user, device)
    }

    pub(super) fn query(&mut self, text: &str) -> Result<Value, Error> {
        let body = object(text, "the key query")?;
        let mut out = json!({});
        for (user, wanted) in body
            .get("device_keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let wanted: Vec<&str> = wanted
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out[user] = json!({});
            for ((u, d), keys) in &self.devices {
                if u == user && (wanted.is_empty() || wanted.contains(&d.as_str())) {
                    if let Some(k) = &keys.device_keys {
                        out[user][d] = k.clone();
                    }
                }
            }
        }
        Ok(json!({ "device_keys": out, "failures": {} }))
    }

    pub(super) fn claim(&mut self, text: &str) -> Result<Value, Error> {
        let body = object(text, "the key claim")?;
        let mut out = json!({});
        for (user, devices) in body
            .get("one_time_keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for (device, alg) in devices.as_object().into_iter().flatten() {
                let alg = alg.as_str().unwrap_or_default();
                let Ok(keys) = self.device(user, device) else {
                    continue;
                };
                let prefix = format!("{alg}:");
                let one_time = keys
                    .one_time
                    .keys()
                    .find(|id| id.starts_with(&prefix))
                    .cloned();
                let claimed = match one_time {
                    Some(id) => keys.one_time.remove(&id).map(|k| (id, k)),
                    None => keys.fallback.get_mut(alg).map(|(id, k, used)| {
                        *used = true;
                        (id.clone(), k.clone())
                    }),
                };
                if let Some((id, key)) = claimed {
                    out[user][device] = json!({ id: key });
                }
            }
        }
        Ok(json!({ "one_time_keys": out, "failures": {} }))
    }

    pub(super) fn send(
        &mut self,
        sender: &str,
        sender_device: &str,
        event_type: &str,
        txn_id: &str,
        messages: &str,
    ) -> Result<(), Error> {
        let messages = object(messages, "the messages")?;
        self.device(sender, sender_device)?;
        let mut sends = Vec::new();
        for (user, targets) in &messages {
            for (device, content) in targets.as_object().into_iter().flatten() {
                if !content.is_object() {
                    return Err(Error::new(
                        "M_BAD_JSON",
                        "each to-device message's content must be an object",
                    ));
                }
                sends.push(SentToDevice {
                    sender: sender.to_string(),
                    sender_device: sender_device.to_string(),
                    event_type: event_type.to_string(),
                    to_user_id: user.clone(),
                    to_device_id: device.clone(),
                    content: content.clone(),
                });
            }
        }
        let txn = (
            sender.to_string(),
            sender_device.to_string(),
            txn_id.to_string(),
        );
        if self.txns.insert(txn) {
            self.sent.extend(sends);
        }
        Ok(())
    }
}
