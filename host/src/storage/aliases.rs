//! The room alias directory.

use super::{Result, Storage};

impl Storage {
    /// Adds an alias; false if it is taken.
    pub(crate) async fn create_alias(
        &self,
        alias: &str,
        room_id: &str,
        creator: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)",
        )
        .bind(alias)
        .bind(room_id)
        .bind(creator)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `(room_id, creator)` of an alias.
    pub(crate) async fn alias(&self, alias: &str) -> Result<Option<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT room_id, creator FROM room_aliases WHERE alias = ?")
                .bind(alias)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub(crate) async fn delete_alias(&self, alias: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM room_aliases WHERE alias = ?")
            .bind(alias)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Points every alias of room `from` at room `to` (a room upgrade), in one statement.
    pub(crate) async fn move_aliases(&self, from: &str, to: &str) -> Result<()> {
        sqlx::query("UPDATE room_aliases SET room_id = ? WHERE room_id = ?")
            .bind(to)
            .bind(from)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias")
                .bind(room_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
