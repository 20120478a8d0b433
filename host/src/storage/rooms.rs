//! Rooms and memberships: who is in which room, and the public directory flag.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MembershipRow {
    pub(crate) room_id: String,
    pub(crate) user_id: String,
    pub(crate) membership: String,
    pub(crate) event_id: String,
    pub(crate) stream: i64,
}

impl Storage {
    pub(crate) async fn room_exists(&self, room_id: &str) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as("SELECT room_id FROM rooms WHERE room_id = ?")
            .bind(room_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// A user's memberships, optionally only those of one kind, not forgotten.
    pub(crate) async fn user_memberships(
        &self,
        user_id: &str,
        membership: Option<&str>,
    ) -> Result<Vec<MembershipRow>> {
        let rows = match membership {
            Some(m) => {
                sqlx::query_as(
                    "SELECT room_id, user_id, membership, event_id, stream FROM memberships
                     WHERE user_id = ? AND membership = ? AND forgotten = 0",
                )
                .bind(user_id)
                .bind(m)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT room_id, user_id, membership, event_id, stream FROM memberships
                     WHERE user_id = ? AND forgotten = 0",
                )
                .bind(user_id)
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(rows)
    }

    pub(crate) async fn membership(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRow>> {
        Ok(sqlx::query_as(
            "SELECT room_id, user_id, membership, event_id, stream FROM memberships
             WHERE room_id = ? AND user_id = ?",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub(crate) async fn room_members(
        &self,
        room_id: &str,
        membership: Option<&str>,
    ) -> Result<Vec<MembershipRow>> {
        let rows = match membership {
            Some(m) => {
                sqlx::query_as(
                    "SELECT room_id, user_id, membership, event_id, stream FROM memberships
                     WHERE room_id = ? AND membership = ? ORDER BY user_id",
                )
                .bind(room_id)
                .bind(m)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT room_id, user_id, membership, event_id, stream FROM memberships
                     WHERE room_id = ? ORDER BY user_id",
                )
                .bind(room_id)
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(rows)
    }

    /// Marks a left room as forgotten; false unless the user has left or been banned.
    pub(crate) async fn forget_room(&self, room_id: &str, user_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE memberships SET forgotten = 1
             WHERE room_id = ? AND user_id = ? AND membership IN ('leave', 'ban')",
        )
        .bind(room_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn set_room_public(&self, room_id: &str, public: bool) -> Result<()> {
        sqlx::query("UPDATE rooms SET is_public = ? WHERE room_id = ?")
            .bind(public)
            .bind(room_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn room_is_public(&self, room_id: &str) -> Result<bool> {
        let row: Option<(bool,)> = sqlx::query_as("SELECT is_public FROM rooms WHERE room_id = ?")
            .bind(room_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.0).unwrap_or(false))
    }

    pub(crate) async fn public_rooms(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY created_ts")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// Another user's membership in a room the asker is or was in, beside the asker's own.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct MemberChange {
    pub(crate) user_id: String,
    pub(crate) membership: String,
    pub(crate) stream: i64,
    pub(crate) my_membership: String,
    pub(crate) my_stream: i64,
}

impl Storage {
    /// The other users' memberships in the rooms `user` is joined to or whose membership in
    /// them changed after `after`, where theirs or `user`'s changed after `after`.
    pub(crate) async fn member_changes_around(
        &self,
        user: &str,
        after: i64,
    ) -> Result<Vec<MemberChange>> {
        Ok(sqlx::query_as(
            // Two halves so that the common case, joined rooms where little changed, reads
            // only the changed memberships (`memberships_by_room_stream`), not every member.
            "SELECT m.user_id, m.membership, m.stream,
                    mine.membership AS my_membership, mine.stream AS my_stream
             FROM memberships mine JOIN memberships m
               ON m.room_id = mine.room_id AND m.stream > ?2
             WHERE mine.user_id = ?1 AND mine.membership = 'join' AND m.user_id != ?1
             UNION ALL
             SELECT m.user_id, m.membership, m.stream,
                    mine.membership AS my_membership, mine.stream AS my_stream
             FROM memberships mine JOIN memberships m ON m.room_id = mine.room_id
             WHERE mine.user_id = ?1 AND mine.stream > ?2 AND m.user_id != ?1",
        )
        .bind(user)
        .bind(after)
        .fetch_all(self.pool())
        .await?)
    }

    /// The memberships set after stream position `after`, at most `limit`, in stream order:
    /// `(user_id, membership, stream)`. The outgoing federation queue finds new destination
    /// servers in them.
    pub(crate) async fn memberships_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT user_id, membership, stream FROM memberships WHERE stream > ?
             ORDER BY stream LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Which of `candidates` are joined to a room `user` is joined to.
    pub(crate) async fn users_sharing_a_room(
        &self,
        user: &str,
        candidates: &[&str],
    ) -> Result<std::collections::HashSet<String>> {
        let list = serde_json::to_string(candidates)?;
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT b.user_id FROM memberships a
             JOIN memberships b ON b.room_id = a.room_id
             WHERE a.user_id = ? AND a.membership = 'join' AND b.membership = 'join'
               AND b.user_id IN (SELECT value FROM json_each(?))",
        )
        .bind(user)
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
