//! Presence rows: each user's state, status message and last activity, written through the
//! writer at a stream position, and read by user or by change for the users one shares a
//! room with.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{Result, Storage};

/// Sets a user's presence; takes a stream position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PresenceWrite {
    pub(crate) user_id: String,
    pub(crate) presence: String,
    pub(crate) status_msg: Option<String>,
    pub(crate) last_active_ts: i64,
}

impl PresenceWrite {
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence,
                status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,
                stream = excluded.stream",
        )
        .bind(&self.user_id)
        .bind(&self.presence)
        .bind(&self.status_msg)
        .bind(self.last_active_ts)
        .bind(stream)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// A stored presence.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct PresenceRow {
    pub(crate) user_id: String,
    pub(crate) presence: String,
    pub(crate) status_msg: Option<String>,
    pub(crate) last_active_ts: i64,
    pub(crate) stream: i64,
}

const COLUMNS: &str = "user_id, presence, status_msg, last_active_ts, stream";

impl Storage {
    pub(crate) async fn presence(&self, user_id: &str) -> Result<Option<PresenceRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM presence WHERE user_id = ?"))
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Every user's presence changed with `after < stream <= upto`, at most `limit`, in
    /// stream order (a user's earlier changes are gone: only the latest is kept).
    pub(crate) async fn presence_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<PresenceRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM presence WHERE stream > ? AND stream <= ?
             ORDER BY stream LIMIT ?"
        ))
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The presence of `user` and of the users who share a joined room with them, changed
    /// after `after` and at or before `upto`, at most `limit`, the latest changes first.
    pub(crate) async fn presence_changes(
        &self,
        user: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<PresenceRow>> {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM presence WHERE stream > "));
        sql.push_bind(after)
            .push(" AND stream <= ")
            .push_bind(upto)
            .push(" AND (user_id = ")
            .push_bind(user)
            .push(
                " OR user_id IN (SELECT them.user_id FROM memberships me JOIN memberships them \
                 ON them.room_id = me.room_id WHERE me.membership = 'join' \
                 AND them.membership = 'join' AND me.user_id = ",
            )
            .push_bind(user)
            .push(")) ORDER BY stream DESC LIMIT ")
            .push_bind(limit);
        Ok(sql.build_query_as().fetch_all(self.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(user: &str, presence: &str) -> PresenceWrite {
        PresenceWrite {
            user_id: user.into(),
            presence: presence.into(),
            status_msg: None,
            last_active_ts: 5,
        }
    }

    async fn join(s: &Storage, room: &str, user: &str, membership: &str) {
        sqlx::query(
            "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
             VALUES (?, ?, ?, ?, 1)",
        )
        .bind(room)
        .bind(user)
        .bind(membership)
        .bind(format!("${room}{user}"))
        .execute(s.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn changes_are_those_of_oneself_and_of_users_sharing_a_joined_room_after_a_point() {
        let (_dir, s) = crate::storage::temporary().await;
        join(&s, "!r:x", "@me:x", "join").await;
        join(&s, "!r:x", "@friend:x", "join").await;
        join(&s, "!r:x", "@gone:x", "leave").await;
        join(&s, "!other:x", "@stranger:x", "join").await;
        let mut conn = s.pool().acquire().await.unwrap();
        for (i, user) in ["@me:x", "@friend:x", "@gone:x", "@stranger:x"]
            .iter()
            .enumerate()
        {
            write(user, "online")
                .apply(&mut conn, i as i64 + 1)
                .await
                .unwrap();
        }
        write("@friend:x", "unavailable")
            .apply(&mut conn, 9)
            .await
            .unwrap();
        drop(conn);
        let users = |rows: Vec<PresenceRow>| {
            rows.into_iter()
                .map(|r| (r.user_id, r.presence))
                .collect::<Vec<_>>()
        };
        let all = s.presence_changes("@me:x", 0, 100, 10).await.unwrap();
        assert_eq!(
            users(all),
            [
                ("@friend:x".to_string(), "unavailable".to_string()),
                ("@me:x".to_string(), "online".to_string())
            ]
        );
        let later = s.presence_changes("@me:x", 1, 8, 10).await.unwrap();
        assert!(later.is_empty(), "{later:?}");
        let row = s.presence("@friend:x").await.unwrap().unwrap();
        assert_eq!((row.presence.as_str(), row.stream), ("unavailable", 9));
    }
}
