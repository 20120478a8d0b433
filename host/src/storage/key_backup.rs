//! Server-side key backups: a user's backup versions and the room keys stored in each. Every
//! change of keys is one transaction that first takes the write lock (by touching the
//! version's row), so that "is this the current version" and the write cannot be split by
//! another writer.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// A backup version's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct BackupVersionRow {
    pub(crate) version: i64,
    pub(crate) algorithm: String,
    pub(crate) auth_data: String,
    pub(crate) etag: i64,
    pub(crate) count: i64,
}

/// One stored key: what decides which of two keys of a session is kept, and the data.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct BackupKeyRow {
    pub(crate) room_id: String,
    pub(crate) session_id: String,
    pub(crate) first_message_index: i64,
    pub(crate) forwarded_count: i64,
    pub(crate) is_verified: bool,
    pub(crate) session_data: String,
}

/// Why keys could not be changed in a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotCurrent {
    /// The version does not exist, or was deleted.
    Unknown,
    /// Not the current version, which is this one.
    Current(i64),
}

impl Storage {
    /// Makes a new version, the user's current one; answers its number.
    pub(crate) async fn create_backup_version(
        &self,
        user_id: &str,
        algorithm: &str,
        auth_data: &str,
    ) -> Result<i64> {
        let (version,): (i64,) = sqlx::query_as(
            "INSERT INTO backup_versions (user_id, version, algorithm, auth_data)
             SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?
             FROM backup_versions WHERE user_id = ?
             RETURNING version",
        )
        .bind(user_id)
        .bind(algorithm)
        .bind(auth_data)
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok(version)
    }

    /// A version that is not deleted, with its key count; the current one (the highest)
    /// when `version` is none.
    pub(crate) async fn backup_version(
        &self,
        user_id: &str,
        version: Option<i64>,
    ) -> Result<Option<BackupVersionRow>> {
        Ok(sqlx::query_as(
            "SELECT v.version, v.algorithm, v.auth_data, v.etag,
                    (SELECT COUNT(*) FROM backup_keys k
                     WHERE k.user_id = v.user_id AND k.version = v.version) AS count
             FROM backup_versions v
             WHERE v.user_id = ? AND v.deleted = 0 AND (? IS NULL OR v.version = ?)
             ORDER BY v.version DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(version)
        .bind(version)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Replaces a version's `auth_data`; answers whether the version exists.
    pub(crate) async fn update_backup_version(
        &self,
        user_id: &str,
        version: i64,
        auth_data: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE backup_versions SET auth_data = ?
             WHERE user_id = ? AND version = ? AND deleted = 0",
        )
        .bind(auth_data)
        .bind(user_id)
        .bind(version)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a version and its keys; answers whether it existed.
    pub(crate) async fn delete_backup_version(&self, user_id: &str, version: i64) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE backup_versions SET deleted = 1
             WHERE user_id = ? AND version = ? AND deleted = 0",
        )
        .bind(user_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM backup_keys WHERE user_id = ? AND version = ?")
            .bind(user_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The keys of a version, of one room or one session of it when given, in room and
    /// session order.
    pub(crate) async fn backup_keys(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Vec<BackupKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,
                    session_data
             FROM backup_keys
             WHERE user_id = ? AND version = ? AND (? IS NULL OR room_id = ?)
               AND (? IS NULL OR session_id = ?)
             ORDER BY room_id, session_id",
        )
        .bind(user_id)
        .bind(version)
        .bind(room_id)
        .bind(room_id)
        .bind(session_id)
        .bind(session_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores keys in `version` if it is the user's current one: `keep` says, given a new key
    /// and the one stored for its session, whether the new one replaces it. The etag moves if
    /// any key was written. Answers the version's etag and count after.
    pub(crate) async fn store_backup_keys(
        &self,
        user_id: &str,
        version: i64,
        keys: &[BackupKeyRow],
        keep: impl Fn(&BackupKeyRow, &BackupKeyRow) -> bool,
    ) -> Result<std::result::Result<(i64, i64), NotCurrent>> {
        let mut tx = self.pool().begin().await?;
        if let Err(not) = take_current(&mut tx, user_id, version).await? {
            return Ok(Err(not));
        }
        let mut written = 0;
        for key in keys {
            let stored: Option<BackupKeyRow> = sqlx::query_as(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,
                        session_data
                 FROM backup_keys
                 WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?",
            )
            .bind(user_id)
            .bind(version)
            .bind(&key.room_id)
            .bind(&key.session_id)
            .fetch_optional(&mut *tx)
            .await?;
            if stored.as_ref().is_some_and(|old| !keep(key, old)) {
                continue;
            }
            sqlx::query(
                "INSERT OR REPLACE INTO backup_keys (user_id, version, room_id, session_id,
                     first_message_index, forwarded_count, is_verified, session_data)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(user_id)
            .bind(version)
            .bind(&key.room_id)
            .bind(&key.session_id)
            .bind(key.first_message_index)
            .bind(key.forwarded_count)
            .bind(key.is_verified)
            .bind(&key.session_data)
            .execute(&mut *tx)
            .await?;
            written += 1;
        }
        let after = finish(&mut tx, user_id, version, written > 0).await?;
        tx.commit().await?;
        Ok(Ok(after))
    }

    /// Deletes the keys of a version (of one room, or one session, when given); answers the
    /// etag and count after, or `None` when the version does not exist.
    pub(crate) async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Option<(i64, i64)>> {
        let mut tx = self.pool().begin().await?;
        let exists = sqlx::query(
            "UPDATE backup_versions SET etag = etag
             WHERE user_id = ? AND version = ? AND deleted = 0",
        )
        .bind(user_id)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !exists {
            return Ok(None);
        }
        let gone = sqlx::query(
            "DELETE FROM backup_keys
             WHERE user_id = ? AND version = ? AND (? IS NULL OR room_id = ?)
               AND (? IS NULL OR session_id = ?)",
        )
        .bind(user_id)
        .bind(version)
        .bind(room_id)
        .bind(room_id)
        .bind(session_id)
        .bind(session_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let after = finish(&mut tx, user_id, version, gone > 0).await?;
        tx.commit().await?;
        Ok(Some(after))
    }
}

/// Takes the write lock by touching `version`'s row if it is the user's current version;
/// otherwise says which is.
async fn take_current(
    tx: &mut SqliteConnection,
    user_id: &str,
    version: i64,
) -> Result<std::result::Result<(), NotCurrent>> {
    let touched = sqlx::query(
        "UPDATE backup_versions SET etag = etag
         WHERE user_id = ? AND version = ? AND deleted = 0
           AND version = (SELECT MAX(version) FROM backup_versions
                          WHERE user_id = ? AND deleted = 0)",
    )
    .bind(user_id)
    .bind(version)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if touched == 1 {
        return Ok(Ok(()));
    }
    let (exists, current): (bool, Option<i64>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM backup_versions
                        WHERE user_id = ? AND version = ? AND deleted = 0),
                (SELECT MAX(version) FROM backup_versions WHERE user_id = ? AND deleted = 0)",
    )
    .bind(user_id)
    .bind(version)
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Err(match (exists, current) {
        (true, Some(current)) => NotCurrent::Current(current),
        _ => NotCurrent::Unknown,
    }))
}

/// Moves the etag if something changed; answers the etag and key count.
async fn finish(
    tx: &mut SqliteConnection,
    user_id: &str,
    version: i64,
    changed: bool,
) -> Result<(i64, i64)> {
    if changed {
        sqlx::query("UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?")
            .bind(user_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    let (etag, count): (i64, i64) = sqlx::query_as(
        "SELECT etag, (SELECT COUNT(*) FROM backup_keys WHERE user_id = ? AND version = ?)
         FROM backup_versions WHERE user_id = ? AND version = ?",
    )
    .bind(user_id)
    .bind(version)
    .bind(user_id)
    .bind(version)
    .fetch_one(&mut *tx)
    .await?;
    Ok((etag, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::temporary;

    fn key(session: &str, index: i64) -> BackupKeyRow {
        BackupKeyRow {
            room_id: "!r:x".into(),
            session_id: session.into(),
            first_message_index: index,
            forwarded_count: 0,
            is_verified: false,
            session_data: "{}".into(),
        }
    }

    #[tokio::test]
    async fn keys_go_only_to_the_current_version_and_go_with_a_deleted_one() {
        let (_dir, s) = temporary().await;
        let lower = |new: &BackupKeyRow, old: &BackupKeyRow| {
            new.first_message_index < old.first_message_index
        };
        let v1 = s.create_backup_version("@a:x", "alg", "{}").await.unwrap();
        let stored = s
            .store_backup_keys("@a:x", v1, &[key("s", 5), key("t", 1)], lower)
            .await
            .unwrap();
        assert_eq!(stored, Ok((1, 2)));
        // `keep` decides: a higher index leaves the key, and the etag.
        let kept = s.store_backup_keys("@a:x", v1, &[key("s", 9)], lower).await;
        assert_eq!(kept.unwrap(), Ok((1, 2)));
        let v2 = s.create_backup_version("@a:x", "alg", "{}").await.unwrap();
        assert_eq!(v2, v1 + 1);
        let old = s.store_backup_keys("@a:x", v1, &[key("u", 0)], lower).await;
        assert_eq!(old.unwrap(), Err(NotCurrent::Current(v2)));
        let unknown = s.store_backup_keys("@a:x", 99, &[key("u", 0)], lower).await;
        assert_eq!(unknown.unwrap(), Err(NotCurrent::Unknown));
        let other_user = s.store_backup_keys("@b:x", v2, &[key("u", 0)], lower).await;
        assert_eq!(other_user.unwrap(), Err(NotCurrent::Unknown));

        assert!(s.delete_backup_version("@a:x", v1).await.unwrap());
        assert!(s
            .backup_keys("@a:x", v1, None, None)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.backup_version("@a:x", Some(v1)).await.unwrap(), None);
        assert_eq!(
            s.backup_version("@a:x", None)
                .await
                .unwrap()
                .unwrap()
                .version,
            v2
        );
        assert!(!s.delete_backup_version("@a:x", v1).await.unwrap());
    }
}
