//! Metadata of uploaded media; the bytes live in files under `data_dir/media`.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MediaRow {
    pub(crate) content_type: String,
    pub(crate) filename: Option<String>,
}

/// A new upload's row.
pub(crate) struct NewMedia<'a> {
    pub(crate) media_id: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) filename: Option<&'a str>,
    pub(crate) size: i64,
    pub(crate) uploader: &'a str,
    pub(crate) now: i64,
}

impl Storage {
    /// Inserts the row of an upload unless it takes its uploader's stored media past `quota`
    /// bytes (0: no quota); answers whether it did. The sum and the insert are one statement,
    /// so concurrent uploads cannot both squeeze under the quota.
    pub(crate) async fn insert_media_within_quota(
        &self,
        m: &NewMedia<'_>,
        quota: u64,
    ) -> Result<bool> {
        let quota = i64::try_from(quota).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "INSERT INTO media (media_id, content_type, filename, size, uploader, created_ts)
             SELECT ?, ?, ?, ?, ?, ?
             WHERE ? = 0
                OR (SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ?) + ? <= ?",
        )
        .bind(m.media_id)
        .bind(m.content_type)
        .bind(m.filename)
        .bind(m.size)
        .bind(m.uploader)
        .bind(m.now)
        .bind(quota)
        .bind(m.uploader)
        .bind(m.size)
        .bind(quota)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The bytes of media `uploader` has stored.
    pub(crate) async fn media_usage(&self, uploader: &str) -> Result<i64> {
        let (used,): (i64,) =
            sqlx::query_as("SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ?")
                .bind(uploader)
                .fetch_one(self.pool())
                .await?;
        Ok(used)
    }

    pub(crate) async fn media(&self, media_id: &str) -> Result<Option<MediaRow>> {
        Ok(
            sqlx::query_as("SELECT content_type, filename FROM media WHERE media_id = ?")
                .bind(media_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
