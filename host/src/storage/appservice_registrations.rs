//! Application services registered at runtime: their registration text (YAML), kept so that
//! they come back at the next start, and the read-only views of their delivery queues that
//! the admin API shows.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredRegistration {
    pub appservice_id: String,
    pub yaml: String,
    pub added_ts: i64,
    pub updated_ts: i64,
}

impl Storage {
    /// Every runtime registration, in the order they were added.
    pub async fn appservice_registrations(&self) -> Result<Vec<StoredRegistration>> {
        Ok(sqlx::query_as(
            "SELECT appservice_id, yaml, added_ts, updated_ts FROM appservice_registrations
             ORDER BY added_ts, appservice_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores a new runtime registration. A queue left behind by an earlier service with the
    /// same id is dropped in the same transaction: a new registration starts at the present,
    /// not at a stale position with everything since then behind it.
    pub async fn add_appservice_registration(&self, id: &str, yaml: &str, now: i64) -> Result<()> {
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
        sqlx::query("DELETE FROM appservice_queues WHERE appservice_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the text of a runtime registration; its queue is kept.
    pub async fn update_appservice_registration(
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
    pub async fn remove_appservice_registration(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let removed = sqlx::query("DELETE FROM appservice_registrations WHERE appservice_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM appservice_queues WHERE appservice_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// A service's queue as it is, without making one: its acknowledged position, the events
    /// stored after it, and the transaction in flight (its id and number of events).
    pub async fn appservice_backlog(&self, id: &str) -> Result<Option<Backlog>> {
        let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT position, pending_txn_id, pending_body FROM appservice_queues
             WHERE appservice_id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some((position, pending_txn_id, pending_body)) = row else {
            return Ok(None);
        };
        let (events_after,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM events WHERE stream > ?")
                .bind(position)
                .fetch_one(self.pool())
                .await?;
        let pending_events = match pending_body {
            Some(body) => {
                let body: serde_json::Value = serde_json::from_str(&body)?;
                body["events"].as_array().map_or(0, Vec::len) as i64
            }
            None => 0,
        };
        Ok(Some(Backlog {
            position,
            events_after,
            pending_txn_id,
            pending_events,
        }))
    }
}

/// What a service has not acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// The stream position up to which the service has acknowledged (or was not interested).
    pub position: i64,
    /// Events stored after `position`, whether the service wants them or not: the distance
    /// its queue has still to go, and an upper bound on the events it will be sent.
    pub events_after: i64,
    /// The transaction in flight, sent again until acknowledged.
    pub pending_txn_id: Option<i64>,
    /// The events in that transaction.
    pub pending_events: i64,
}
