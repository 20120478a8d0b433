//! Metadata of uploaded media; the bytes live in files under `data_dir/media`.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub media_id: String,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: i64,
}

impl Storage {
    pub async fn insert_media(
        &self,
        media_id: &str,
        content_type: &str,
        filename: Option<&str>,
        size: i64,
        uploader: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO media (media_id, content_type, filename, size, uploader, created_ts)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(media_id)
        .bind(content_type)
        .bind(filename)
        .bind(size)
        .bind(uploader)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn media(&self, media_id: &str) -> Result<Option<MediaRow>> {
        Ok(sqlx::query_as(
            "SELECT media_id, content_type, filename, size FROM media WHERE media_id = ?",
        )
        .bind(media_id)
        .fetch_optional(self.pool())
        .await?)
    }
}
