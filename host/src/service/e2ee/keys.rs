//! Device keys, one-time keys and fallback keys: `/keys/upload`, `/keys/query`, `/keys/claim`.
//! Device keys must be the session's own, signed by the device; a change of them is a key
//! change in the stream that other users' `device_lists` read. Other servers' users are asked
//! of their servers ([`crate::service::federation::e2ee`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::signed;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
use crate::storage::e2ee_keys::{KeysWrite, OneTimeKey};
use crate::storage::writer::WriteOp;

/// The algorithm of the one-time keys every client uploads: its count is always reported,
/// zero included, so clients know to upload more.
const SIGNED_CURVE25519: &str = "signed_curve25519";

/// The body of `POST /keys/upload`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UploadBody {
    #[serde(default)]
    pub(crate) device_keys: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) one_time_keys: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) fallback_keys: Option<Map<String, Value>>,
}

/// `algorithm:key_id` split; the spec's key ids always have both parts.
fn parse_key_id(id: &str) -> Result<(&str, &str)> {
    id.split_once(':')
        .filter(|(a, k)| !a.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            Error::InvalidParam(format!(
                "key id '{}' is not of the form <algorithm>:<key id>",
                id.escape_debug()
            ))
        })
}

fn one_time_keys(keys: Option<Map<String, Value>>) -> Result<Vec<OneTimeKey>> {
    keys.unwrap_or_default()
        .into_iter()
        .map(|(id, key)| {
            let (algorithm, key_id) = parse_key_id(&id)?;
            Ok(OneTimeKey {
                algorithm: algorithm.to_string(),
                key_id: key_id.to_string(),
                json: key.to_string(),
            })
        })
        .collect()
}

/// Checks uploaded device keys: the session's user and device, the device's ed25519 key,
/// and its own signature by that key.
fn check_device_keys(session: &Session, keys: &Map<String, Value>) -> Result<()> {
    let user_id = keys.get("user_id").and_then(Value::as_str);
    let device_id = keys.get("device_id").and_then(Value::as_str);
    if user_id != Some(&*session.user_id) || device_id != Some(&session.device_id) {
        return Err(Error::InvalidParam(
            "device_keys.user_id and device_id must be those of the access token's session".into(),
        ));
    }
    if !keys.get("algorithms").is_some_and(Value::is_array) {
        return Err(Error::BadJson(
            "device_keys.algorithms must be a list".into(),
        ));
    }
    let key_id = format!("ed25519:{}", session.device_id);
    let Some(public) = keys
        .get("keys")
        .and_then(|k| k.get(&key_id))
        .and_then(Value::as_str)
    else {
        return Err(Error::InvalidParam(format!(
            "device_keys.keys must hold the device's {key_id} key"
        )));
    };
    if !signed::verify(
        &Value::Object(keys.clone()),
        &session.user_id,
        &key_id,
        public,
    ) {
        return Err(Error::InvalidSignature(format!(
            "device_keys are not signed by the device's {key_id} key"
        )));
    }
    Ok(())
}

/// One-time key counts as clients are given them: `signed_curve25519` always among them, at 0
/// when none is left, so that a client knows to upload more.
pub(crate) fn with_signed_curve25519(mut counts: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    counts.entry(SIGNED_CURVE25519.to_string()).or_insert(0);
    counts
}

/// The body of `POST /keys/query`: user id → device ids (none for all).
#[derive(Debug, Deserialize)]
pub(crate) struct QueryBody {
    pub(crate) device_keys: BTreeMap<String, Vec<String>>,
    /// How long to wait for other servers, in milliseconds.
    #[serde(default)]
    pub(crate) timeout: Option<u64>,
}

/// The body of `POST /keys/claim`: user id → device id → algorithm.
#[derive(Debug, Deserialize)]
pub(crate) struct ClaimBody {
    pub(crate) one_time_keys: BTreeMap<String, BTreeMap<String, String>>,
    /// How long to wait for other servers, in milliseconds.
    #[serde(default)]
    pub(crate) timeout: Option<u64>,
}

/// A client's `timeout` for other servers, or the default; at most a minute.
pub(crate) fn remote_timeout(ms: Option<u64>) -> Duration {
    ms.map_or(
        crate::service::federation::e2ee::DEFAULT_KEYS_TIMEOUT,
        |ms| Duration::from_millis(ms.min(60_000)),
    )
}

impl Services {
    /// POST /keys/upload: answers the device's one-time key counts.
    pub(crate) async fn upload_keys(&self, session: &Session, body: UploadBody) -> Result<Value> {
        if session.device_id.is_empty() {
            return Err(Error::InvalidParam(
                "keys belong to a device: name one with ?device_id=".into(),
            ));
        }
        let user = &session.user_id;
        let device = &session.device_id;
        let one_time = one_time_keys(body.one_time_keys)?;
        let fallback = one_time_keys(body.fallback_keys)?;
        if let Some(keys) = &body.device_keys {
            check_device_keys(session, keys)?;
        }
        if !one_time.is_empty() || !fallback.is_empty() {
            self.storage
                .store_device_one_time_keys(user, device, &one_time, &fallback)
                .await?;
        }
        if let Some(keys) = body.device_keys {
            let json = Value::Object(keys).to_string();
            let stored = self.storage.device_keys(user).await?;
            // Clients upload the same keys again at every start: only a change is news.
            if stored.get(device.as_str()) != Some(&json) {
                self.writer
                    .write(WriteOp::Keys(Box::new(KeysWrite::DeviceKeys {
                        user_id: user.to_string(),
                        device_id: device.clone(),
                        json,
                    })))
                    .await?;
            }
        }
        Ok(json!({ "one_time_key_counts": self.one_time_key_counts(user, device).await? }))
    }

    /// The device's one-time key counts, `signed_curve25519` always among them.
    pub(crate) async fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<BTreeMap<String, i64>> {
        Ok(with_signed_curve25519(
            self.storage.one_time_key_counts(user_id, device_id).await?,
        ))
    }

    /// POST /keys/query: `wanted` is user id → device ids (empty for all); other servers
    /// are given `timeout`.
    pub(crate) async fn query_keys(
        &self,
        asker: &str,
        wanted: BTreeMap<String, Vec<String>>,
        timeout: Duration,
    ) -> Result<Value> {
        let mut device_keys = Map::new();
        let mut cross = [Map::new(), Map::new(), Map::new()];
        let kinds = ["master", "self_signing", "user_signing"];
        let (wanted, remote): (BTreeMap<_, _>, BTreeMap<_, _>) =
            wanted.into_iter().partition(|(u, _)| self.is_local_user(u));
        let remote = self.query_remote_keys(asker, remote, timeout).await?;
        device_keys.extend(remote.device_keys);
        cross[0].extend(remote.master_keys);
        cross[1].extend(remote.self_signing_keys);
        let failures = remote.failures;
        for (user, devices) in wanted {
            let names: BTreeMap<String, Option<String>> = self
                .storage
                .devices(&user)
                .await?
                .into_iter()
                .map(|d| (d.device_id, d.display_name))
                .collect();
            let mut mine = Map::new();
            for (device, json) in self.storage.device_keys(&user).await? {
                if !devices.is_empty() && !devices.contains(&device) {
                    continue;
                }
                let mut keys: Value =
                    serde_json::from_str(&json).map_err(crate::storage::StorageError::from)?;
                if let Some(Some(name)) = names.get(&device) {
                    keys["unsigned"] = json!({ "device_display_name": name });
                }
                mine.insert(device, keys);
            }
            device_keys.insert(user.clone(), Value::Object(mine));
            let stored = self.storage.cross_signing_keys(&user).await?;
            for (i, kind) in kinds.iter().enumerate() {
                // The user-signing key says whom a user trusts: only they see it.
                if *kind == "user_signing" && user != asker {
                    continue;
                }
                if let Some(json) = stored.get(*kind) {
                    let key: Value =
                        serde_json::from_str(json).map_err(crate::storage::StorageError::from)?;
                    cross[i].insert(user.clone(), key);
                }
            }
        }
        let [master, self_signing, user_signing] = cross;
        Ok(json!({
            "device_keys": device_keys,
            "failures": failures,
            "master_keys": master,
            "self_signing_keys": self_signing,
            "user_signing_keys": user_signing,
        }))
    }

    /// POST /keys/claim: `wanted` is user id → device id → algorithm; other servers are
    /// given `timeout`.
    pub(crate) async fn claim_keys(
        &self,
        wanted: BTreeMap<String, BTreeMap<String, String>>,
        timeout: Duration,
    ) -> Result<Value> {
        let (wanted, remote): (BTreeMap<_, _>, BTreeMap<_, _>) =
            wanted.into_iter().partition(|(u, _)| self.is_local_user(u));
        let (mut claimed, failures) = self.claim_remote_keys(remote, timeout).await;
        for (user, devices) in wanted {
            let mut mine = Map::new();
            for (device, algorithm) in devices {
                let Some((_, key_id, json)) =
                    self.storage.claim_key(&user, &device, &algorithm).await?
                else {
                    continue;
                };
                let key: Value =
                    serde_json::from_str(&json).map_err(crate::storage::StorageError::from)?;
                mine.insert(device, json!({ format!("{algorithm}:{key_id}"): key }));
            }
            if !mine.is_empty() {
                claimed.insert(user, Value::Object(mine));
            }
        }
        Ok(json!({ "one_time_keys": claimed, "failures": failures }))
    }

    /// Deletes devices (all of the user's when `None`) with their tokens and pushers, then
    /// their keys and waiting to-device messages, and tells the user's contacts through `device_lists`.
    pub(crate) async fn remove_devices(
        &self,
        user_id: &str,
        device_ids: Option<&[String]>,
    ) -> Result<()> {
        self.users.delete_devices(user_id, device_ids).await?;
        self.remove_device_pushers(user_id, device_ids).await?;
        self.writer
            .write(WriteOp::Keys(Box::new(KeysWrite::DevicesDeleted {
                user_id: user_id.to_string(),
                device_ids: device_ids.map(<[String]>::to_vec),
            })))
            .await?;
        Ok(())
    }

    /// Whether `user_id` is of this server.
    pub(crate) fn is_local_user(&self, user_id: &str) -> bool {
        user_id
            .split_once(':')
            .is_some_and(|(_, server)| server == self.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_splits_at_its_first_colon_and_needs_both_parts() {
        assert_eq!(
            parse_key_id("signed_curve25519:AAA:B").unwrap(),
            ("signed_curve25519", "AAA:B")
        );
        assert!(parse_key_id("signed_curve25519").is_err());
        assert!(parse_key_id(":A").is_err());
        assert!(parse_key_id("a:").is_err());
    }
}
