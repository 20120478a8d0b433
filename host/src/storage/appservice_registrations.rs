//! Application services registered at runtime: their registration text (YAML), kept so that
//! they come back at the next start.

use super::queue::{self, QueueKind};
use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredRegistration {
    pub(crate) appservice_id: String,
    pub(crate) yaml: String,
}

impl Storage {
    /// Every runtime registration, in the order they were added.
    pub(crate) async fn appservice_registrations(&self) -> Result<Vec<StoredRegistration>> {
        Ok(sqlx::query_as(
            "SELECT appservice_id, yaml FROM appservice_registrations
             ORDER BY added_ts, appservice_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores a new runtime registration. A queue left behind by an earlier service with the
    /// same id is dropped in the same transaction: a new registration starts at the present,
    /// not at a stale position with everything since then behind it.
    pub(crate) async fn add_appservice_registration(
        &self,
        id: &str,
        yaml: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO appservice_registrations (appservice_id, yaml, added_ts, updated_ts)
             VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(yaml)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        queue::delete(&mut tx, QueueKind::Appservice, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the text of a runtime registration; its queue is kept.
    pub(crate) async fn update_appservice_registration(
        &self,
        id: &str,
        yaml: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE appservice_registrations SET yaml = ?, updated_ts = ? WHERE appservice_id = ?",
        )
        .bind(yaml)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes a runtime registration and its queue (with any transaction in flight); `false`
    /// when there was no such registration.
    pub(crate) async fn remove_appservice_registration(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let removed = sqlx::query("DELETE FROM appservice_registrations WHERE appservice_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        queue::delete(&mut tx, QueueKind::Appservice, id).await?;
        tx.commit().await?;
        Ok(removed > 0)
    }
}
