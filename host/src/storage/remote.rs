//! What this server keeps of other servers: their users' device lists (invalidated through
//! [`super::e2ee_keys::KeysWrite::RemoteChanged`]) and the metadata of their media fetched
//! for local clients (the bytes are files under `data_dir/media/remote`).

use super::{Result, Storage};

/// A remote file's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RemoteMediaRow {
    pub(crate) content_type: String,
    pub(crate) filename: Option<String>,
}

impl Storage {
    /// The kept device list of a remote user, when there is one.
    pub(crate) async fn remote_device_list(&self, user_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT json FROM remote_device_lists WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Keeps a remote user's device list as their server answered it.
    pub(crate) async fn keep_remote_device_list(
        &self,
        user_id: &str,
        json: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO remote_device_lists (user_id, json, fetched_ts) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET json = excluded.json,
                                                 fetched_ts = excluded.fetched_ts",
        )
        .bind(user_id)
        .bind(json)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The row of a remote file fetched before.
    pub(crate) async fn remote_media(
        &self,
        server_name: &str,
        media_id: &str,
    ) -> Result<Option<RemoteMediaRow>> {
        Ok(sqlx::query_as(
            "SELECT content_type, filename FROM remote_media
             WHERE server_name = ? AND media_id = ?",
        )
        .bind(server_name)
        .bind(media_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records a remote file whose bytes are in place.
    pub(crate) async fn insert_remote_media(
        &self,
        server_name: &str,
        media_id: &str,
        row: &RemoteMediaRow,
        size: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO remote_media
                 (server_name, media_id, content_type, filename, size, fetched_ts)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (server_name, media_id) DO NOTHING",
        )
        .bind(server_name)
        .bind(media_id)
        .bind(&row.content_type)
        .bind(&row.filename)
        .bind(size)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::e2ee_keys::KeysWrite;
    use super::*;

    #[tokio::test]
    async fn a_kept_device_list_is_replaced_and_dropped_by_a_remote_change() {
        let (_dir, s) = crate::storage::temporary().await;
        assert_eq!(s.remote_device_list("@b:there").await.unwrap(), None);
        s.keep_remote_device_list("@b:there", "{\"v\":1}", 1)
            .await
            .unwrap();
        s.keep_remote_device_list("@b:there", "{\"v\":2}", 2)
            .await
            .unwrap();
        assert_eq!(
            s.remote_device_list("@b:there").await.unwrap().as_deref(),
            Some("{\"v\":2}")
        );
        let mut conn = s.pool().acquire().await.unwrap();
        KeysWrite::RemoteChanged {
            user_id: "@b:there".into(),
        }
        .apply(&mut conn, 7)
        .await
        .unwrap();
        drop(conn);
        assert_eq!(s.remote_device_list("@b:there").await.unwrap(), None);
        assert_eq!(s.key_changes(6, 7).await.unwrap(), ["@b:there"]);
    }

    #[tokio::test]
    async fn a_remote_files_row_is_kept_once_per_server_and_id() {
        let (_dir, s) = crate::storage::temporary().await;
        let row = |t: &str| RemoteMediaRow {
            content_type: t.into(),
            filename: None,
        };
        s.insert_remote_media("one", "ID", &row("image/png"), 3, 1)
            .await
            .unwrap();
        s.insert_remote_media("one", "ID", &row("text/plain"), 3, 2)
            .await
            .unwrap();
        let kept = s.remote_media("one", "ID").await.unwrap().unwrap();
        assert_eq!(kept.content_type, "image/png");
        assert!(s.remote_media("two", "ID").await.unwrap().is_none());
    }
}
