//! Application-service delivery queues: the acknowledged stream position of each service and
//! its one pending transaction.

use super::{Result, Storage};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub position: i64,
    pub next_txn_id: i64,
    pub pending_txn_id: Option<i64>,
    pub pending_last_stream: Option<i64>,
    pub pending_body: Option<String>,
}

impl Storage {
    /// The queue of a service, made at `start` (its first position) if it has none yet.
    pub async fn appservice_queue(&self, id: &str, start: i64) -> Result<QueueRow> {
        sqlx::query(
            "INSERT OR IGNORE INTO appservice_queues (appservice_id, position) VALUES (?, ?)",
        )
        .bind(id)
        .bind(start)
        .execute(self.pool())
        .await?;
        Ok(sqlx::query_as(
            "SELECT position, next_txn_id, pending_txn_id, pending_last_stream, pending_body
             FROM appservice_queues WHERE appservice_id = ?",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Stores the transaction about to be sent; from now on it is sent until acknowledged.
    pub async fn store_pending_txn(
        &self,
        id: &str,
        txn_id: i64,
        last_stream: i64,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE appservice_queues
             SET pending_txn_id = ?, pending_last_stream = ?, pending_body = ?
             WHERE appservice_id = ? AND pending_txn_id IS NULL",
        )
        .bind(txn_id)
        .bind(last_stream)
        .bind(body)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The service acknowledged `txn_id`: its position moves past the transaction's events.
    pub async fn ack_txn(&self, id: &str, txn_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE appservice_queues
             SET position = pending_last_stream, next_txn_id = pending_txn_id + 1,
                 pending_txn_id = NULL, pending_last_stream = NULL, pending_body = NULL
             WHERE appservice_id = ? AND pending_txn_id = ?",
        )
        .bind(id)
        .bind(txn_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves a queue with nothing in flight past events its service does not want.
    pub async fn advance_queue(&self, id: &str, position: i64) -> Result<()> {
        sqlx::query(
            "UPDATE appservice_queues SET position = ?
             WHERE appservice_id = ? AND pending_txn_id IS NULL AND position < ?",
        )
        .bind(position)
        .bind(id)
        .bind(position)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
