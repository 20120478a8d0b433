//! Uploaded /sync filters, numbered per user.

use super::{Result, Storage};

impl Storage {
    /// Stores a filter and answers its id.
    pub async fn create_filter(&self, user_id: &str, json: &str) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(next)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(next)
    }

    pub async fn filter(&self, user_id: &str, filter_id: i64) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT json FROM filters WHERE user_id = ? AND filter_id = ?")
                .bind(user_id)
                .bind(filter_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.0))
    }
}
