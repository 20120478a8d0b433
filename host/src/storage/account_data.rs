//! Per-user account data, global (`room_id = ''`) and per room: its write and its reads.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// Sets one piece of account data; takes a stream position.
#[derive(Debug, Clone)]
pub(crate) struct AccountDataWrite {
    pub(crate) user_id: String,
    /// `""` for global account data.
    pub(crate) room_id: String,
    pub(crate) kind: String,
    pub(crate) content: String,
}

impl AccountDataWrite {
    /// Writes the row inside the writer's transaction, at `stream`.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_data (user_id, room_id, type, content, stream)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_id, room_id, type)
             DO UPDATE SET content = excluded.content, stream = excluded.stream",
        )
        .bind(&self.user_id)
        .bind(&self.room_id)
        .bind(&self.kind)
        .bind(&self.content)
        .bind(stream)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AccountDataRow {
    pub(crate) room_id: String,
    #[sqlx(rename = "type")]
    pub(crate) kind: String,
    pub(crate) content: String,
}

impl Storage {
    /// Every user's global account data of type `kind`: `(user, content)`.
    pub(crate) async fn global_account_data_of_type(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT user_id, content FROM account_data WHERE room_id = '' AND type = ?",
        )
        .bind(kind)
        .fetch_all(self.pool())
        .await?)
    }

    pub(crate) async fn account_data(
        &self,
        user_id: &str,
        room_id: &str,
        kind: &str,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Everything changed in `after < stream <= upto`, all rooms and global.
    pub(crate) async fn account_data_since(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<AccountDataRow>> {
        Ok(sqlx::query_as(
            "SELECT room_id, type, content FROM account_data
             WHERE user_id = ? AND stream > ? AND stream <= ? ORDER BY stream",
        )
        .bind(user_id)
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(room_id: &str, content: &str) -> AccountDataWrite {
        AccountDataWrite {
            user_id: "@a:x".into(),
            room_id: room_id.into(),
            kind: "m.tag".into(),
            content: content.into(),
        }
    }

    #[tokio::test]
    async fn account_data_set_again_replaces_its_content_at_the_later_stream() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        set("", "1").apply(&mut conn, 1).await.unwrap();
        set("!r:x", "room").apply(&mut conn, 2).await.unwrap();
        set("", "2").apply(&mut conn, 3).await.unwrap();
        drop(conn);

        let global = s.account_data("@a:x", "", "m.tag").await.unwrap();
        assert_eq!(global.as_deref(), Some("2"));
        let changed = |after, upto| {
            let s = s.clone();
            async move {
                s.account_data_since("@a:x", after, upto)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.room_id, r.content))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(changed(0, 1).await, []);
        assert_eq!(
            changed(0, 3).await,
            [("!r:x".into(), "room".into()), (String::new(), "2".into())]
        );
    }
}
