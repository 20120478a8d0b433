//! Uploaded /sync filters, numbered per user.

use super::{Result, Storage};

impl Storage {
    /// Stores a filter and answers its id.
    pub(crate) async fn create_filter(&self, user_id: &str, json: &str) -> Result<i64> {
        // One statement: it takes the write lock before it reads the next id, so concurrent
        // uploads wait their turn instead of failing on a stale read snapshot.
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO filters (user_id, filter_id, json)
             SELECT ?, COALESCE(MAX(filter_id), -1) + 1, ? FROM filters WHERE user_id = ?
             RETURNING filter_id",
        )
        .bind(user_id)
        .bind(json)
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    pub(crate) async fn filter(&self, user_id: &str, filter_id: i64) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT json FROM filters WHERE user_id = ? AND filter_id = ?")
                .bind(user_id)
                .bind(filter_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.0))
    }
}
