//! Accounts, devices and access tokens.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) password_hash: Option<String>,
    pub(crate) is_admin: bool,
    pub(crate) displayname: Option<String>,
    pub(crate) avatar_url: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub(crate) device_id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) last_seen_ts: Option<i64>,
    pub(crate) last_seen_ip: Option<String>,
}

impl Storage {
    /// Creates the user, made by the application service or plugin `made_by` (`None`: a
    /// person registering, or an admin); false if the id is taken.
    pub(crate) async fn create_user(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        is_admin: bool,
        made_by: Option<&str>,
        displayname: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO users
                (user_id, password_hash, is_admin, appservice_id, displayname, created_ts)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(password_hash)
        .bind(is_admin)
        .bind(made_by)
        .bind(displayname)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who made account `user_id` (the inner `None`: a person or an admin); `None` when there
    /// is no such account.
    pub(crate) async fn user_made_by(&self, user_id: &str) -> Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT appservice_id FROM users WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// A page of the ids of the accounts not made by `service` that are at least `from` and
    /// below `until` (no end when `None`), after `after`, in id order: a range of the primary
    /// key, so a namespace's literal prefix reads only the accounts that start with it. The
    /// page comes as one text, the ids joined by newlines (no user id holds one): handing
    /// rows over one by one costs more than SQLite's reading them.
    pub(crate) async fn user_ids_not_made_by(
        &self,
        service: &str,
        from: &str,
        until: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        // Two statements rather than `(? IS NULL OR user_id < ?)`, which SQLite could not use
        // as the end of the index range: it would read on to the end of the table.
        let query = match until {
            Some(_) => sqlx::query_as(
                "SELECT group_concat(user_id, char(10) ORDER BY user_id) FROM (
                    SELECT user_id FROM users
                    WHERE user_id >= ? AND user_id > ? AND user_id < ?
                      AND (appservice_id IS NULL OR appservice_id != ?)
                    ORDER BY user_id LIMIT ?)",
            ),
            None => sqlx::query_as(
                "SELECT group_concat(user_id, char(10) ORDER BY user_id) FROM (
                    SELECT user_id FROM users
                    WHERE user_id >= ? AND user_id > ?
                      AND (appservice_id IS NULL OR appservice_id != ?)
                    ORDER BY user_id LIMIT ?)",
            ),
        };
        let mut query = query.bind(from).bind(after);
        if let Some(until) = until {
            query = query.bind(until);
        }
        let (ids,): (Option<String>,) = query
            .bind(service)
            .bind(limit)
            .fetch_one(self.pool())
            .await?;
        Ok(ids
            .map(|ids| ids.split('\n').map(str::to_owned).collect())
            .unwrap_or_default())
    }

    /// The accounts made before their maker was recorded and not worked out yet, with
    /// whether each has a password.
    pub(crate) async fn users_made_by_unknown(&self) -> Result<Vec<(String, bool)>> {
        Ok(sqlx::query_as(
            "SELECT u.user_id, u.password_hash IS NOT NULL FROM users_maker_unknown k
             JOIN users u ON u.user_id = k.user_id ORDER BY u.user_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the makers worked out for accounts made before makers were recorded, and
    /// settles every such account (the others stay made by a person or an admin), in one
    /// transaction.
    pub(crate) async fn settle_unknown_makers(&self, made: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for (user_id, service) in made {
            sqlx::query("UPDATE users SET appservice_id = ? WHERE user_id = ?")
                .bind(service)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM users_maker_unknown")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the server knows `user_id`: an account here, or a member (in any membership)
    /// of a room here.
    pub(crate) async fn user_known(&self, user_id: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM users WHERE user_id = ?
             UNION ALL
             SELECT 1 FROM memberships WHERE user_id = ?
             LIMIT 1",
        )
        .bind(user_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn user(&self, user_id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT password_hash, is_admin, displayname, avatar_url FROM users WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub(crate) async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE user_id = ?")
            .bind(hash)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks the account deactivated and forgets its password, so nothing logs in to it.
    pub(crate) async fn deactivate_user(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn is_deactivated(&self, user_id: &str) -> Result<bool> {
        let row: Option<(bool,)> =
            sqlx::query_as("SELECT deactivated FROM users WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some_and(|r| r.0))
    }

    pub(crate) async fn set_displayname(&self, user_id: &str, name: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET displayname = ? WHERE user_id = ?")
            .bind(name)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn set_avatar_url(&self, user_id: &str, url: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET avatar_url = ? WHERE user_id = ?")
            .bind(url)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Creates a device without an access token unless the user has it: whether it was made.
    pub(crate) async fn create_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO devices (user_id, device_id, display_name) VALUES (?, ?, ?)",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(display_name)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates (or refreshes) a device and gives it a new access token, in one transaction.
    pub(crate) async fn create_session(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
        token: &str,
        now: i64,
        ip: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_id, device_id) DO UPDATE SET
                display_name = COALESCE(excluded.display_name, devices.display_name),
                last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(display_name)
        .bind(now)
        .bind(ip)
        .execute(&mut *tx)
        .await?;
        // A device has one live token: logging in again with the same device id replaces it.
        sqlx::query("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?")
            .bind(user_id)
            .bind(device_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO access_tokens (token, user_id, device_id) VALUES (?, ?, ?)")
            .bind(token)
            .bind(user_id)
            .bind(device_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `(user_id, device_id, expires_at)` of a token; `expires_at` is `None` for a token that
    /// never expires.
    pub(crate) async fn token_owner(
        &self,
        token: &str,
    ) -> Result<Option<(String, String, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT user_id, device_id, expires_at FROM access_tokens WHERE token = ?",
        )
        .bind(token)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Makes the session of `token` refreshable: it expires at `expires_at` and
    /// `refresh_token` trades it for a new one. Answers whether the token was found.
    pub(crate) async fn make_refreshable(
        &self,
        token: &str,
        refresh_token: &str,
        expires_at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_tokens SET refresh_token = ?, expires_at = ? WHERE token = ?",
        )
        .bind(refresh_token)
        .bind(expires_at)
        .bind(token)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Trades a refresh token for a new access token and refresh token, in one transaction so
    /// that a refresh token is used once however many requests bring it. Answers the old
    /// access token (for caches to forget), or `None` for a refresh token not (or no longer)
    /// known.
    pub(crate) async fn refresh_session(
        &self,
        refresh_token: &str,
        new_token: &str,
        new_refresh_token: &str,
        expires_at: i64,
    ) -> Result<Option<String>> {
        // The write comes first (as in `delete_devices`): a transaction that read first would
        // fail, not wait, when another write commits before it upgrades to writing.
        let mut tx = self.pool().begin().await?;
        let old: Option<(String, String, String)> = sqlx::query_as(
            "DELETE FROM access_tokens WHERE refresh_token = ? RETURNING token, user_id, device_id",
        )
        .bind(refresh_token)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((old_token, user_id, device_id)) = old else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO access_tokens (token, user_id, device_id, expires_at, refresh_token)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(new_token)
        .bind(user_id)
        .bind(device_id)
        .bind(expires_at)
        .bind(new_refresh_token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(old_token))
    }

    /// Deletes devices and their tokens; `None` deletes all of the user's. Answers the
    /// tokens that were revoked so that caches can forget them.
    pub(crate) async fn delete_devices(
        &self,
        user_id: &str,
        device_ids: Option<&[String]>,
    ) -> Result<Vec<String>> {
        // Each step starts with its write (answering the revoked tokens with RETURNING): a
        // transaction that read first would fail, not wait, when another write commits before
        // it upgrades to writing.
        let mut tx = self.pool().begin().await?;
        let mut revoked = Vec::new();
        match device_ids {
            None => {
                let rows: Vec<(String,)> =
                    sqlx::query_as("DELETE FROM access_tokens WHERE user_id = ? RETURNING token")
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?;
                revoked.extend(rows.into_iter().map(|r| r.0));
                sqlx::query("DELETE FROM devices WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(ids) => {
                for id in ids {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?
                         RETURNING token",
                    )
                    .bind(user_id)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                    revoked.extend(rows.into_iter().map(|r| r.0));
                    sqlx::query("DELETE FROM devices WHERE user_id = ? AND device_id = ?")
                        .bind(user_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(revoked)
    }

    pub(crate) async fn devices(&self, user_id: &str) -> Result<Vec<DeviceRow>> {
        Ok(sqlx::query_as(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices
             WHERE user_id = ? ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub(crate) async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<DeviceRow>> {
        Ok(sqlx::query_as(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices
             WHERE user_id = ? AND device_id = ?",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Renames a device; false if it does not exist.
    pub(crate) async fn rename_device(
        &self,
        user_id: &str,
        device_id: &str,
        name: &str,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?")
                .bind(name)
                .bind(user_id)
                .bind(device_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
