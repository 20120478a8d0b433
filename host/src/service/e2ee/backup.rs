//! Server-side key backups: versions (one current, the newest) holding the client's encrypted
//! room keys. Which of two keys of one session is kept is the spec's rule, [`better`]; uploads
//! to a version that is not the current one are refused with `M_WRONG_ROOM_KEYS_VERSION`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::service::identifiers::{RoomId, UserId};
use crate::service::{Error, Result, Services};
use crate::storage::key_backup::{BackupKeyRow, BackupVersionRow, NotCurrent};

/// The one backup algorithm of the spec.
pub(crate) const MEGOLM_BACKUP_V1: &str = "m.megolm_backup.v1.curve25519-aes-sha2";

/// The body of `POST /room_keys/version` and `PUT /room_keys/version/{version}`.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionBody {
    pub(crate) algorithm: String,
    pub(crate) auth_data: Map<String, Value>,
    #[serde(default)]
    pub(crate) version: Option<String>,
}

/// One key as the client uploads and downloads it (`KeyBackupData`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KeyData {
    pub(crate) first_message_index: u32,
    pub(crate) forwarded_count: u32,
    pub(crate) is_verified: bool,
    pub(crate) session_data: Map<String, Value>,
}

/// Keys to store: room id → session id → key.
pub(crate) type Upload = BTreeMap<RoomId, BTreeMap<String, KeyData>>;

/// Whether `new` replaces `old`, two keys of one session: a verified key is better than an
/// unverified one, then the one that decrypts from an earlier message, then the one
/// forwarded fewer times; a key no better than the stored one leaves it.
pub(crate) fn better(new: &BackupKeyRow, old: &BackupKeyRow) -> bool {
    let rank = |k: &BackupKeyRow| {
        (
            std::cmp::Reverse(k.is_verified),
            k.first_message_index,
            k.forwarded_count,
        )
    };
    rank(new) < rank(old)
}

/// A version number from the path or query: what `POST /room_keys/version` gave.
pub(crate) fn version_number(text: &str) -> Result<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::NotFound(format!("no backup version {}", text.escape_debug())))
}

fn version_json(row: BackupVersionRow) -> Value {
    let auth_data: Value = serde_json::from_str(&row.auth_data).unwrap_or(json!({}));
    json!({
        "algorithm": row.algorithm,
        "auth_data": auth_data,
        "count": row.count,
        "etag": row.etag.to_string(),
        "version": row.version.to_string(),
    })
}

fn check_algorithm(algorithm: &str) -> Result<()> {
    if algorithm != MEGOLM_BACKUP_V1 {
        return Err(Error::InvalidParam(format!(
            "unknown backup algorithm '{}' (this server knows {MEGOLM_BACKUP_V1})",
            algorithm.escape_debug()
        )));
    }
    Ok(())
}

fn key_json(row: &BackupKeyRow) -> Value {
    json!({
        "first_message_index": row.first_message_index,
        "forwarded_count": row.forwarded_count,
        "is_verified": row.is_verified,
        "session_data": serde_json::from_str::<Value>(&row.session_data).unwrap_or(json!({})),
    })
}

fn counted(etag: i64, count: i64) -> Value {
    json!({ "etag": etag.to_string(), "count": count })
}

impl Services {
    /// Makes a new backup version, which becomes the current one.
    pub(crate) async fn create_backup(&self, user: &UserId, body: VersionBody) -> Result<Value> {
        check_algorithm(&body.algorithm)?;
        let auth_data = Value::Object(body.auth_data).to_string();
        let version = self
            .storage
            .create_backup_version(user, &body.algorithm, &auth_data)
            .await?;
        Ok(json!({ "version": version.to_string() }))
    }

    /// A version (the current one when `version` is none), with its key count and etag.
    pub(crate) async fn backup(&self, user: &UserId, version: Option<&str>) -> Result<Value> {
        let number = version.map(version_number).transpose()?;
        match self.storage.backup_version(user, number).await? {
            Some(row) => Ok(version_json(row)),
            None if version.is_none() => Err(Error::NotFound("no current backup version".into())),
            None => Err(Error::NotFound("unknown backup version".into())),
        }
    }

    /// Replaces a version's `auth_data`; its algorithm stays.
    pub(crate) async fn update_backup(
        &self,
        user: &UserId,
        version: &str,
        body: VersionBody,
    ) -> Result<()> {
        let number = version_number(version)?;
        if body.version.as_deref().is_some_and(|v| v != version) {
            return Err(Error::InvalidParam(
                "the body's version is not the path's".into(),
            ));
        }
        let stored = self
            .storage
            .backup_version(user, Some(number))
            .await?
            .ok_or_else(|| Error::NotFound("unknown backup version".into()))?;
        if stored.algorithm != body.algorithm {
            return Err(Error::InvalidParam("algorithm does not match".into()));
        }
        let auth_data = Value::Object(body.auth_data).to_string();
        if !self
            .storage
            .update_backup_version(user, number, &auth_data)
            .await?
        {
            return Err(Error::NotFound("unknown backup version".into()));
        }
        Ok(())
    }

    /// Deletes a version and every key in it.
    pub(crate) async fn delete_backup(&self, user: &UserId, version: &str) -> Result<()> {
        let number = version_number(version)?;
        if !self.storage.delete_backup_version(user, number).await? {
            return Err(Error::NotFound("unknown backup version".into()));
        }
        Ok(())
    }

    /// Stores keys in the current version; answers its `etag` and `count`.
    pub(crate) async fn store_backup_keys(
        &self,
        user: &UserId,
        version: &str,
        upload: Upload,
    ) -> Result<Value> {
        let number = version_number(version)?;
        let mut rows = Vec::new();
        for (room_id, sessions) in upload {
            for (session_id, key) in sessions {
                rows.push(BackupKeyRow {
                    room_id: room_id.to_string(),
                    session_id,
                    first_message_index: key.first_message_index.into(),
                    forwarded_count: key.forwarded_count.into(),
                    is_verified: key.is_verified,
                    session_data: Value::Object(key.session_data).to_string(),
                });
            }
        }
        match self
            .storage
            .store_backup_keys(user, number, &rows, better)
            .await?
        {
            Ok((etag, count)) => Ok(counted(etag, count)),
            Err(NotCurrent::Current(current)) => Err(Error::WrongRoomKeysVersion {
                current_version: current.to_string(),
            }),
            Err(NotCurrent::Unknown) => Err(Error::NotFound("unknown backup version".into())),
        }
    }

    /// The keys of a version: all of them (`{"rooms": …}`), one room's (`{"sessions": …}`)
    /// or one session's key.
    pub(crate) async fn backup_keys(
        &self,
        user: &UserId,
        version: &str,
        room_id: Option<&RoomId>,
        session_id: Option<&str>,
    ) -> Result<Value> {
        let number = version_number(version)?;
        if self
            .storage
            .backup_version(user, Some(number))
            .await?
            .is_none()
        {
            return Err(Error::NotFound("unknown backup version".into()));
        }
        let rows = self
            .storage
            .backup_keys(user, number, room_id.map(RoomId::as_str), session_id)
            .await?;
        if session_id.is_some() {
            return rows
                .first()
                .map(key_json)
                .ok_or_else(|| Error::NotFound("no key for that session".into()));
        }
        let mut rooms: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for row in &rows {
            rooms
                .entry(&row.room_id)
                .or_default()
                .insert(row.session_id.clone(), key_json(row));
        }
        if let Some(room) = room_id {
            let sessions = rooms.remove(room.as_str()).unwrap_or_default();
            return Ok(json!({ "sessions": sessions }));
        }
        let rooms: Map<String, Value> = rooms
            .into_iter()
            .map(|(room, sessions)| (room.to_string(), json!({ "sessions": sessions })))
            .collect();
        Ok(json!({ "rooms": rooms }))
    }

    /// Deletes keys of a version (all, one room's, one session's); answers `etag` and `count`.
    pub(crate) async fn delete_backup_keys(
        &self,
        user: &UserId,
        version: &str,
        room_id: Option<&RoomId>,
        session_id: Option<&str>,
    ) -> Result<Value> {
        let number = version_number(version)?;
        match self
            .storage
            .delete_backup_keys(user, number, room_id.map(RoomId::as_str), session_id)
            .await?
        {
            Some((etag, count)) => Ok(counted(etag, count)),
            None => Err(Error::NotFound("unknown backup version".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(is_verified: bool, first_message_index: i64, forwarded_count: i64) -> BackupKeyRow {
        BackupKeyRow {
            room_id: "!r:x".into(),
            session_id: "s".into(),
            first_message_index,
            forwarded_count,
            is_verified,
            session_data: "{}".into(),
        }
    }

    #[test]
    fn a_verified_key_beats_an_earlier_one_and_an_earlier_one_a_less_forwarded_one() {
        // Verification first, whatever the indices.
        assert!(better(&key(true, 10, 5), &key(false, 0, 0)));
        assert!(!better(&key(false, 0, 0), &key(true, 10, 5)));
        // Then the first message index.
        assert!(better(&key(false, 1, 9), &key(false, 2, 0)));
        assert!(!better(&key(false, 2, 0), &key(false, 1, 9)));
        // Then the forwarded count.
        assert!(better(&key(true, 3, 0), &key(true, 3, 1)));
        assert!(!better(&key(true, 3, 1), &key(true, 3, 0)));
        // The same key again changes nothing.
        assert!(!better(&key(true, 3, 1), &key(true, 3, 1)));
    }

    #[test]
    fn a_version_is_a_positive_number() {
        assert_eq!(version_number("7").unwrap(), 7);
        for bad in ["0", "-1", "x", "", "1.5", "99999999999999999999"] {
            assert_eq!(
                version_number(bad).unwrap_err().errcode(),
                "M_NOT_FOUND",
                "{bad}"
            );
        }
    }
}
