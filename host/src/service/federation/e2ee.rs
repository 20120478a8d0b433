//! End-to-end encryption across servers. Ours answered for others (`/user/devices`,
//! `/user/keys/query`, `/user/keys/claim`: only this server's users, never a user-signing
//! key); theirs asked of their servers for local clients' `/keys/query` and `/keys/claim`
//! (one request per server, all at once, each bounded by the client's timeout; a server that
//! fails is named in `failures`). Remote device lists of users sharing a room with the asker
//! are kept and dropped again when their server sends `m.device_list_update` or
//! `m.signing_key_update`, which also makes the user `changed` in local users' `device_lists`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::FederationError;
use crate::service::identifiers::UserId;
use crate::service::{now_ms, Error, Result, Services};
use crate::storage::e2ee_keys::KeysWrite;
use crate::storage::writer::WriteOp;

/// How long a client's key query waits for other servers unless it says otherwise.
pub(crate) const DEFAULT_KEYS_TIMEOUT: Duration = Duration::from_secs(10);

/// What other servers answered a key query, merged: the parts of `/keys/query`'s answer.
#[derive(Default)]
pub(crate) struct RemoteKeys {
    pub(crate) device_keys: Map<String, Value>,
    pub(crate) master_keys: Map<String, Value>,
    pub(crate) self_signing_keys: Map<String, Value>,
    pub(crate) failures: Map<String, Value>,
}

/// Users grouped by their server: server → user → what is asked of them.
fn by_server<T>(wanted: BTreeMap<String, T>) -> BTreeMap<String, BTreeMap<String, T>> {
    let mut out: BTreeMap<String, BTreeMap<String, T>> = BTreeMap::new();
    for (user, what) in wanted {
        let server = UserId::parse(user.as_str())
            .map(|u| u.server_name().to_string())
            .unwrap_or_else(|_| user.clone());
        out.entry(server).or_default().insert(user, what);
    }
    out
}

/// What `failures` says of a server that could not be asked.
fn failure(e: &FederationError) -> Value {
    let status = match e {
        FederationError::Remote { status, .. } => *status,
        FederationError::Timeout(_) => 504,
        FederationError::Disabled
        | FederationError::DeniedServer(_)
        | FederationError::DeniedAddress { .. } => 403,
        _ => 503,
    };
    json!({ "status": status, "message": e.to_string() })
}

/// One user's entry of a `/user/keys/query` answer, as kept: their devices and keys.
fn user_entry(answer: &Value, user: &str) -> Value {
    json!({
        "device_keys": answer["device_keys"][user].as_object().cloned().unwrap_or_default(),
        "master_key": answer["master_keys"][user],
        "self_signing_key": answer["self_signing_keys"][user],
    })
}

impl RemoteKeys {
    /// Adds `user`'s kept entry, only the `devices` asked for (all when empty).
    fn add(&mut self, user: &str, entry: &Value, devices: &[String]) {
        let mine: Map<String, Value> = entry["device_keys"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(d, k)| {
                (devices.is_empty() || devices.contains(d))
                    && k["user_id"] == user
                    && k["device_id"] == d.as_str()
            })
            .map(|(d, k)| (d.clone(), k.clone()))
            .collect();
        self.device_keys
            .insert(user.to_string(), Value::Object(mine));
        for (kind, into) in [
            ("master_key", &mut self.master_keys),
            ("self_signing_key", &mut self.self_signing_keys),
        ] {
            if entry[kind].is_object() {
                into.insert(user.to_string(), entry[kind].clone());
            }
        }
    }
}

impl Services {
    /// GET /_matrix/federation/v1/user/devices/{userId}: a local user's devices and
    /// cross-signing keys (never their user-signing key).
    pub(crate) async fn user_devices_for_server(&self, user_id: &str) -> Result<Value> {
        let user = UserId::parse(user_id)?;
        if user.server_name() != self.server_name() {
            return Err(Error::NotFound(format!(
                "{user_id} is not a user of this server"
            )));
        }
        let keys = self.storage.device_keys(user_id).await?;
        let mut devices = Vec::new();
        for d in self.storage.devices(user_id).await? {
            let Some(json) = keys.get(&d.device_id) else {
                continue;
            };
            let keys: Value =
                serde_json::from_str(json).map_err(crate::storage::StorageError::from)?;
            let mut device = json!({ "device_id": d.device_id, "keys": keys });
            if let Some(name) = d.display_name {
                device["device_display_name"] = json!(name);
            }
            devices.push(device);
        }
        let mut out = json!({
            "user_id": user_id,
            "stream_id": self.storage.last_key_change(user_id).await?,
            "devices": devices,
        });
        let cross = self.storage.cross_signing_keys(user_id).await?;
        for (kind, field) in [
            ("master", "master_key"),
            ("self_signing", "self_signing_key"),
        ] {
            if let Some(json) = cross.get(kind) {
                out[field] =
                    serde_json::from_str(json).map_err(crate::storage::StorageError::from)?;
            }
        }
        Ok(out)
    }

    /// POST /_matrix/federation/v1/user/keys/query: the keys of the local users asked for;
    /// others' are not this server's to tell.
    pub(crate) async fn query_keys_for_server(
        &self,
        wanted: BTreeMap<String, Vec<String>>,
    ) -> Result<Value> {
        let ours = wanted
            .into_iter()
            .filter(|(u, _)| self.is_local_user(u))
            .collect();
        let mut answer = self.query_keys("", ours, DEFAULT_KEYS_TIMEOUT).await?;
        if let Some(a) = answer.as_object_mut() {
            a.remove("failures");
            a.remove("user_signing_keys");
        }
        Ok(answer)
    }

    /// POST /_matrix/federation/v1/user/keys/claim: one-time keys of local users' devices.
    pub(crate) async fn claim_keys_for_server(
        &self,
        wanted: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Value> {
        let ours = wanted
            .into_iter()
            .filter(|(u, _)| self.is_local_user(u))
            .collect();
        let mut answer = self.claim_keys(ours, DEFAULT_KEYS_TIMEOUT).await?;
        if let Some(a) = answer.as_object_mut() {
            a.remove("failures");
        }
        Ok(answer)
    }

    /// The keys of other servers' users for `asker`: kept device lists where there are, the
    /// rest asked of their servers at once, each within `timeout`.
    pub(crate) async fn query_remote_keys(
        &self,
        asker: &str,
        wanted: BTreeMap<String, Vec<String>>,
        timeout: Duration,
    ) -> Result<RemoteKeys> {
        let mut out = RemoteKeys::default();
        // A kept list is good only while its server tells this one of changes: while the
        // user shares a room with someone here. Only the asker's rooms are looked at.
        let sharing = if asker.is_empty() {
            Default::default()
        } else {
            let candidates: Vec<&str> = wanted.keys().map(String::as_str).collect();
            self.storage
                .users_sharing_a_room(asker, &candidates)
                .await?
        };
        let mut ask = BTreeMap::new();
        for (user, devices) in wanted {
            let kept = if sharing.contains(&user) {
                self.storage.remote_device_list(&user).await?
            } else {
                None
            };
            match kept {
                Some(json) => {
                    let entry: Value =
                        serde_json::from_str(&json).map_err(crate::storage::StorageError::from)?;
                    out.add(&user, &entry, &devices);
                }
                None => {
                    ask.insert(user, devices);
                }
            }
        }
        let requests = by_server(ask).into_iter().map(|(server, users)| async move {
            // All of each user's devices are asked for, so that the answer can be kept whole.
            let body = json!({
                "device_keys": users.keys().map(|u| (u.clone(), json!([]))).collect::<Map<_, _>>()
            });
            let answer = match self.federation.client() {
                Ok(client) => tokio::time::timeout(
                    timeout,
                    client.post(&server, "/_matrix/federation/v1/user/keys/query", &body),
                )
                .await
                .unwrap_or_else(|_| Err(FederationError::Timeout(server.clone()))),
                Err(e) => Err(e),
            };
            (server, users, answer)
        });
        for (server, users, answer) in futures_util::future::join_all(requests).await {
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(%server, error = %e, "a remote key query failed");
                    out.failures.insert(server, failure(&e));
                    continue;
                }
            };
            for (user, devices) in users {
                let entry = user_entry(&answer, &user);
                out.add(&user, &entry, &devices);
                if sharing.contains(&user) {
                    self.storage
                        .keep_remote_device_list(&user, &entry.to_string(), now_ms())
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// One-time keys of other servers' users' devices, asked of their servers at once:
    /// (user → device → key, failures).
    pub(crate) async fn claim_remote_keys(
        &self,
        wanted: BTreeMap<String, BTreeMap<String, String>>,
        timeout: Duration,
    ) -> (Map<String, Value>, Map<String, Value>) {
        let requests = by_server(wanted)
            .into_iter()
            .map(|(server, users)| async move {
                let body = json!({ "one_time_keys": users });
                let answer = match self.federation.client() {
                    Ok(client) => tokio::time::timeout(
                        timeout,
                        client.post(&server, "/_matrix/federation/v1/user/keys/claim", &body),
                    )
                    .await
                    .unwrap_or_else(|_| Err(FederationError::Timeout(server.clone()))),
                    Err(e) => Err(e),
                };
                (server, users, answer)
            });
        let mut claimed = Map::new();
        let mut failures = Map::new();
        for (server, users, answer) in futures_util::future::join_all(requests).await {
            match answer {
                Ok(answer) => {
                    for user in users.keys() {
                        if let Some(keys) = answer["one_time_keys"][user].as_object() {
                            claimed.insert(user.clone(), Value::Object(keys.clone()));
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%server, error = %e, "a remote key claim failed");
                    failures.insert(server, failure(&e));
                }
            }
        }
        (claimed, failures)
    }

    /// `m.device_list_update` and `m.signing_key_update`: a user of `origin` changed their
    /// devices or cross-signing keys. Their kept list is dropped and local users sharing a
    /// room with them see them in `device_lists.changed`.
    pub(crate) async fn remote_keys_changed(&self, origin: &str, content: &Value) -> Result<()> {
        let Some(user) = content["user_id"].as_str() else {
            return Ok(());
        };
        let of_origin = UserId::parse(user).is_ok_and(|u| u.server_name() == origin);
        if !of_origin {
            tracing::debug!(
                origin,
                user,
                "dropped a key change for a user of another server"
            );
            return Ok(());
        }
        self.writer
            .write(WriteOp::Keys(Box::new(KeysWrite::RemoteChanged {
                user_id: user.to_string(),
            })))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_grouped_by_their_server() {
        let wanted: BTreeMap<String, u8> = [
            ("@a:one".to_string(), 1),
            ("@b:two:8448".to_string(), 2),
            ("@c:one".to_string(), 3),
        ]
        .into();
        let grouped = by_server(wanted);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped["one"].len(), 2);
        assert_eq!(grouped["two:8448"]["@b:two:8448"], 2);
    }

    #[test]
    fn a_kept_entry_gives_only_the_devices_asked_for_and_only_the_users_own() {
        let entry = json!({
            "device_keys": {
                "D1": {"user_id": "@a:one", "device_id": "D1"},
                "D2": {"user_id": "@a:one", "device_id": "D2"},
                "D3": {"user_id": "@evil:one", "device_id": "D3"},
            },
            "master_key": {"user_id": "@a:one", "usage": ["master"]},
            "self_signing_key": null,
        });
        let mut out = RemoteKeys::default();
        out.add("@a:one", &entry, &[]);
        let all: Vec<&String> = out.device_keys["@a:one"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(all, ["D1", "D2"]);
        assert!(out.master_keys.contains_key("@a:one"));
        assert!(!out.self_signing_keys.contains_key("@a:one"));
        let mut some = RemoteKeys::default();
        some.add("@a:one", &entry, &["D2".to_string()]);
        let only: Vec<&String> = some.device_keys["@a:one"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(only, ["D2"]);
    }

    #[test]
    fn a_failed_server_is_reported_with_a_status() {
        let timeout = failure(&FederationError::Timeout("x".into()));
        assert_eq!(timeout["status"], 504);
        let remote = failure(&FederationError::Remote {
            server: "x".into(),
            status: 404,
            errcode: "M_NOT_FOUND".into(),
            error: "no".into(),
        });
        assert_eq!(remote["status"], 404);
    }
}
