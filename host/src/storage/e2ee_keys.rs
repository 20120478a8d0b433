//! End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing keys, and
//! the stream of key changes that `device_lists` reads. A change others must hear of (device
//! keys, cross-signing keys, signatures, a deleted device) is a [`KeysWrite`] through the
//! writer, which stores it and its `key_changes` row at one stream position; one-time and
//! fallback keys only concern their device and are written here directly.

use std::collections::BTreeMap;

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// A change of keys that other users' clients must hear of; takes a stream position.
#[derive(Debug, Clone)]
pub(crate) enum KeysWrite {
    /// A device's identity keys, new or replaced.
    DeviceKeys {
        user_id: String,
        device_id: String,
        json: String,
    },
    /// Cross-signing keys (kind → JSON), each replacing the user's key of that kind.
    CrossSigning {
        user_id: String,
        keys: Vec<(String, String)>,
    },
    /// Signed objects rewritten with new signatures: device keys (`Some(device)`) or a
    /// cross-signing key (kind), of `user_id`.
    Signed {
        user_id: String,
        updates: Vec<(SignedKey, String)>,
    },
    /// Devices gone: their keys and waiting to-device messages go with them.
    DevicesDeleted {
        user_id: String,
        /// `None`: every device of the user.
        device_ids: Option<Vec<String>>,
    },
    /// A remote user's devices or cross-signing keys changed (their server said so): the
    /// kept device list is dropped, to be asked again.
    RemoteChanged { user_id: String },
}

/// Which stored object a signature upload rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignedKey {
    Device(String),
    CrossSigning(String),
}

impl KeysWrite {
    fn user_id(&self) -> &str {
        match self {
            KeysWrite::DeviceKeys { user_id, .. }
            | KeysWrite::CrossSigning { user_id, .. }
            | KeysWrite::Signed { user_id, .. }
            | KeysWrite::DevicesDeleted { user_id, .. }
            | KeysWrite::RemoteChanged { user_id } => user_id,
        }
    }

    /// Writes the keys and the user's `key_changes` row inside the writer's transaction.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        match self {
            KeysWrite::DeviceKeys {
                user_id,
                device_id,
                json,
            } => {
                sqlx::query(
                    "INSERT INTO device_keys (user_id, device_id, json) VALUES (?, ?, ?)
                     ON CONFLICT (user_id, device_id) DO UPDATE SET json = excluded.json",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(json)
                .execute(&mut *conn)
                .await?;
            }
            KeysWrite::CrossSigning { user_id, keys } => {
                for (kind, json) in keys {
                    sqlx::query(
                        "INSERT INTO cross_signing_keys (user_id, kind, json) VALUES (?, ?, ?)
                         ON CONFLICT (user_id, kind) DO UPDATE SET json = excluded.json",
                    )
                    .bind(user_id)
                    .bind(kind)
                    .bind(json)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            KeysWrite::Signed { user_id, updates } => {
                for (key, json) in updates {
                    let (sql, which) = match key {
                        SignedKey::Device(d) => (
                            "UPDATE device_keys SET json = ? WHERE user_id = ? AND device_id = ?",
                            d,
                        ),
                        SignedKey::CrossSigning(k) => (
                            "UPDATE cross_signing_keys SET json = ? WHERE user_id = ? AND kind = ?",
                            k,
                        ),
                    };
                    sqlx::query(sql)
                        .bind(json)
                        .bind(user_id)
                        .bind(which)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            KeysWrite::DevicesDeleted {
                user_id,
                device_ids,
            } => {
                let tables = ["device_keys", "one_time_keys", "fallback_keys", "to_device"];
                for table in tables {
                    match device_ids {
                        None => {
                            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                                .bind(user_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Some(ids) => {
                            for id in ids {
                                sqlx::query(&format!(
                                    "DELETE FROM {table} WHERE user_id = ? AND device_id = ?"
                                ))
                                .bind(user_id)
                                .bind(id)
                                .execute(&mut *conn)
                                .await?;
                            }
                        }
                    }
                }
            }
            KeysWrite::RemoteChanged { user_id } => {
                sqlx::query("DELETE FROM remote_device_lists WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        sqlx::query("INSERT INTO key_changes (stream, user_id) VALUES (?, ?)")
            .bind(stream)
            .bind(self.user_id())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// A one-time or fallback key as uploaded: `algorithm:key_id` → the key's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneTimeKey {
    pub(crate) algorithm: String,
    pub(crate) key_id: String,
    pub(crate) json: String,
}

/// Where a claimed key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimedFrom {
    OneTime,
    Fallback,
}

/// What one device has left on the server for others to claim (see
/// [`Storage::devices_key_state`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DeviceKeyState {
    pub(crate) one_time_key_counts: BTreeMap<String, i64>,
    pub(crate) unused_fallback_key_types: Vec<String>,
}

impl Storage {
    /// Stores one-time keys (a key id already stored keeps its first key, as the spec asks
    /// clients not to reuse ids) and fallback keys (each replacing the device's fallback key of
    /// its algorithm, unused again); one transaction.
    pub(crate) async fn store_device_one_time_keys(
        &self,
        user_id: &str,
        device_id: &str,
        one_time: &[OneTimeKey],
        fallback: &[OneTimeKey],
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for k in one_time {
            sqlx::query(
                "INSERT OR IGNORE INTO one_time_keys (user_id, device_id, algorithm, key_id, json)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(&k.algorithm)
            .bind(&k.key_id)
            .bind(&k.json)
            .execute(&mut *tx)
            .await?;
        }
        for k in fallback {
            sqlx::query(
                "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, json, used)
                 VALUES (?, ?, ?, ?, ?, 0)
                 ON CONFLICT (user_id, device_id, algorithm)
                 DO UPDATE SET key_id = excluded.key_id, json = excluded.json, used = 0",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(&k.algorithm)
            .bind(&k.key_id)
            .bind(&k.json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many one-time keys the device has left, by algorithm.
    pub(crate) async fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT algorithm, COUNT(*) FROM one_time_keys
             WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The algorithms of the device's fallback keys not claimed yet.
    pub(crate) async fn unused_fallback_key_types(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT algorithm FROM fallback_keys
             WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The key state of every device of `users`, by `(user, device)`: its one-time keys left
    /// by algorithm (empty when it has none) and its fallback key types not claimed yet. Two
    /// queries, however many users and devices.
    pub(crate) async fn devices_key_state(
        &self,
        users: &[&str],
    ) -> Result<BTreeMap<(String, String), DeviceKeyState>> {
        let users = serde_json::to_string(users).unwrap_or_else(|_| "[]".into());
        let counts: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT d.user_id, d.device_id, k.algorithm, COUNT(k.algorithm) FROM devices d
             LEFT JOIN one_time_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id
             WHERE d.user_id IN (SELECT value FROM json_each(?))
             GROUP BY d.user_id, d.device_id, k.algorithm",
        )
        .bind(&users)
        .fetch_all(self.pool())
        .await?;
        let mut state: BTreeMap<(String, String), DeviceKeyState> = BTreeMap::new();
        for (user, device, algorithm, count) in counts {
            let entry = state.entry((user, device)).or_default();
            if let Some(algorithm) = algorithm {
                entry.one_time_key_counts.insert(algorithm, count);
            }
        }
        let fallback: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, device_id, algorithm FROM fallback_keys
             WHERE used = 0 AND user_id IN (SELECT value FROM json_each(?))
             ORDER BY algorithm",
        )
        .bind(&users)
        .fetch_all(self.pool())
        .await?;
        for (user, device, algorithm) in fallback {
            // Only the devices that exist: a deleted device's keys are no one's state.
            if let Some(entry) = state.get_mut(&(user, device)) {
                entry.unused_fallback_key_types.push(algorithm);
            }
        }
        Ok(state)
    }

    /// Claims a key of `algorithm` for the device: a one-time key, deleted as it is handed
    /// out, or when none is left the fallback key, marked used and kept. One statement each,
    /// so two claims at once never get the same one-time key.
    pub(crate) async fn claim_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<(ClaimedFrom, String, String)>> {
        let one_time: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM one_time_keys WHERE rowid = (
                SELECT rowid FROM one_time_keys
                WHERE user_id = ? AND device_id = ? AND algorithm = ?
                ORDER BY key_id LIMIT 1)
             RETURNING key_id, json",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(algorithm)
        .fetch_optional(self.pool())
        .await?;
        if let Some((key_id, json)) = one_time {
            return Ok(Some((ClaimedFrom::OneTime, key_id, json)));
        }
        let fallback: Option<(String, String)> = sqlx::query_as(
            "UPDATE fallback_keys SET used = 1
             WHERE user_id = ? AND device_id = ? AND algorithm = ?
             RETURNING key_id, json",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(algorithm)
        .fetch_optional(self.pool())
        .await?;
        Ok(fallback.map(|(key_id, json)| (ClaimedFrom::Fallback, key_id, json)))
    }

    /// The device keys of a user's devices: device id → JSON.
    pub(crate) async fn device_keys(&self, user_id: &str) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT k.device_id, k.json FROM device_keys k
             JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
             WHERE k.user_id = ?",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// A user's cross-signing keys: kind → JSON.
    pub(crate) async fn cross_signing_keys(
        &self,
        user_id: &str,
    ) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, json FROM cross_signing_keys WHERE user_id = ?")
                .bind(user_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Where in the stream a user's keys last changed (0: never): the `stream_id` other
    /// servers are given with the user's devices.
    pub(crate) async fn last_key_change(&self, user_id: &str) -> Result<i64> {
        let (stream,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(stream), 0) FROM key_changes WHERE user_id = ?")
                .bind(user_id)
                .fetch_one(self.pool())
                .await?;
        Ok(stream)
    }

    /// The users whose keys changed in `after < stream <= upto`.
    pub(crate) async fn key_changes(&self, after: i64, upto: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT user_id FROM key_changes WHERE stream > ? AND stream <= ?",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The key changes with `after < stream <= upto`, at most `limit`, in stream order:
    /// (stream, user).
    pub(crate) async fn key_changes_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT stream, user_id FROM key_changes WHERE stream > ? AND stream <= ?
             ORDER BY stream LIMIT ?",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: &str, key_id: &str) -> OneTimeKey {
        OneTimeKey {
            algorithm: algorithm.into(),
            key_id: key_id.into(),
            json: format!("\"{key_id}\""),
        }
    }

    #[tokio::test]
    async fn a_one_time_key_is_claimed_once_then_the_fallback_key_again_and_again() {
        let (_dir, s) = crate::storage::temporary().await;
        let otk = [key("signed_curve25519", "A"), key("signed_curve25519", "B")];
        let fallback = [key("signed_curve25519", "F")];
        s.store_device_one_time_keys("@a:x", "D", &otk, &fallback)
            .await
            .unwrap();
        let claim = || s.claim_key("@a:x", "D", "signed_curve25519");
        let first = claim().await.unwrap().unwrap();
        let second = claim().await.unwrap().unwrap();
        assert_eq!((first.0, first.1.as_str()), (ClaimedFrom::OneTime, "A"));
        assert_eq!((second.0, second.1.as_str()), (ClaimedFrom::OneTime, "B"));
        assert_eq!(
            s.unused_fallback_key_types("@a:x", "D").await.unwrap(),
            ["signed_curve25519"]
        );
        for _ in 0..2 {
            let f = claim().await.unwrap().unwrap();
            assert_eq!((f.0, f.1.as_str()), (ClaimedFrom::Fallback, "F"));
        }
        assert!(s
            .unused_fallback_key_types("@a:x", "D")
            .await
            .unwrap()
            .is_empty());
        assert!(s.one_time_key_counts("@a:x", "D").await.unwrap().is_empty());
        assert_eq!(s.claim_key("@a:x", "D", "other").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_new_fallback_key_replaces_the_old_one_unused() {
        let (_dir, s) = crate::storage::temporary().await;
        s.store_device_one_time_keys("@a:x", "D", &[], &[key("c", "F1")])
            .await
            .unwrap();
        s.claim_key("@a:x", "D", "c").await.unwrap();
        s.store_device_one_time_keys("@a:x", "D", &[], &[key("c", "F2")])
            .await
            .unwrap();
        assert_eq!(
            s.unused_fallback_key_types("@a:x", "D").await.unwrap(),
            ["c"]
        );
        let f = s.claim_key("@a:x", "D", "c").await.unwrap().unwrap();
        assert_eq!(f.1, "F2");
    }

    #[tokio::test]
    async fn the_key_state_of_many_devices_is_read_at_once_and_only_for_devices_that_exist() {
        let (_dir, s) = crate::storage::temporary().await;
        for (user, device) in [("@a:x", "D1"), ("@a:x", "D2"), ("@b:x", "E"), ("@c:x", "F")] {
            sqlx::query("INSERT INTO devices (user_id, device_id) VALUES (?, ?)")
                .bind(user)
                .bind(device)
                .execute(s.pool())
                .await
                .unwrap();
        }
        let otk = [key("signed_curve25519", "A"), key("signed_curve25519", "B")];
        s.store_device_one_time_keys("@a:x", "D1", &otk, &[key("signed_curve25519", "F")])
            .await
            .unwrap();
        s.store_device_one_time_keys("@b:x", "E", &[key("other", "O")], &[])
            .await
            .unwrap();
        // Keys of a device that is gone.
        s.store_device_one_time_keys("@a:x", "GONE", &[], &[key("x", "G")])
            .await
            .unwrap();
        let state = s.devices_key_state(&["@a:x", "@b:x"]).await.unwrap();
        let keys: Vec<(&str, &str)> = state
            .keys()
            .map(|(u, d)| (u.as_str(), d.as_str()))
            .collect();
        assert_eq!(keys, [("@a:x", "D1"), ("@a:x", "D2"), ("@b:x", "E")]);
        let d1 = &state[&("@a:x".to_string(), "D1".to_string())];
        assert_eq!(d1.one_time_key_counts.get("signed_curve25519"), Some(&2));
        assert_eq!(d1.unused_fallback_key_types, ["signed_curve25519"]);
        assert_eq!(
            state[&("@a:x".to_string(), "D2".to_string())],
            DeviceKeyState::default()
        );
        // The same as the one-device reads answer.
        for ((user, device), st) in &state {
            assert_eq!(
                st.one_time_key_counts,
                s.one_time_key_counts(user, device).await.unwrap()
            );
            assert_eq!(
                st.unused_fallback_key_types,
                s.unused_fallback_key_types(user, device).await.unwrap()
            );
        }
    }
}
