//! End-to-end encryption for the plugin's users: a function per import of the WIT interface
//! `e2ee`. `as_user` is a user of the plugin's namespace, or `None` for its sender. Bodies and
//! answers are the client-server API's JSON (`/keys/upload`, `/keys/query`, `/keys/claim`,
//! `/sendToDevice`), what a crypto library makes and reads. What comes back (to-device
//! messages, device lists, key counts) is in the transactions of a plugin whose manifest sets
//! `e2ee = true`: see [`Plugin::on_to_device`](crate::Plugin::on_to_device).

use serde_json::Value;

use crate::host;
use crate::types::Error;

fn json(text: &str) -> Result<Value, Error> {
    Ok(serde_json::from_str(text)?)
}

/// Makes device `device_id` of `as_user` unless it exists (MSC4190); `true` when made.
pub fn create_device(
    as_user: Option<&str>,
    device_id: &str,
    display_name: Option<&str>,
) -> Result<bool, Error> {
    host::with(|h| h.create_device(as_user, device_id, display_name))
}

/// Deletes device `device_id` of `as_user`, with its keys and waiting messages.
pub fn delete_device(as_user: Option<&str>, device_id: &str) -> Result<(), Error> {
    host::with(|h| h.delete_device(as_user, device_id))
}

/// Uploads keys as device `device_id` (`device_keys`, `one_time_keys`, `fallback_keys`);
/// answers `{"one_time_key_counts": …}`.
pub fn upload_keys(as_user: Option<&str>, device_id: &str, keys: &Value) -> Result<Value, Error> {
    json(&host::with(|h| {
        h.upload_keys(as_user, device_id, &keys.to_string())
    })?)
}

/// Queries device keys (`{"device_keys": {user: [devices]}}`); answers the response body.
pub fn query_keys(as_user: Option<&str>, query: &Value) -> Result<Value, Error> {
    json(&host::with(|h| h.query_keys(as_user, &query.to_string()))?)
}

/// Claims one-time keys (`{"one_time_keys": {user: {device: algorithm}}}`); answers the
/// response body.
pub fn claim_keys(as_user: Option<&str>, claim: &Value) -> Result<Value, Error> {
    json(&host::with(|h| h.claim_keys(as_user, &claim.to_string()))?)
}

/// Sends to-device messages from device `device_id`: `messages` is user id → device id (or
/// `*`) → content. A `txn_id` used again by the same device sends nothing.
pub fn send_to_device(
    as_user: Option<&str>,
    device_id: &str,
    event_type: &str,
    txn_id: &str,
    messages: &Value,
) -> Result<(), Error> {
    host::with(|h| {
        h.send_to_device(
            as_user,
            device_id,
            event_type,
            txn_id,
            &messages.to_string(),
        )
    })
}
