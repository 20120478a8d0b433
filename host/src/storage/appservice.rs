//! Application-service delivery queues: the acknowledged stream position of each service and
//! its one pending transaction.

use sqlx::SqliteConnection;

use super::writer::QueueWrite;
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
}

/// Applies one queue step inside the writer's transaction (see [`QueueWrite`]).
pub(super) async fn apply_queue_write(conn: &mut SqliteConnection, q: &QueueWrite) -> Result<()> {
    if let Some(txn_id) = q.ack {
        sqlx::query(
            "UPDATE appservice_queues
             SET position = pending_last_stream, next_txn_id = pending_txn_id + 1,
                 pending_txn_id = NULL, pending_last_stream = NULL, pending_body = NULL
             WHERE appservice_id = ? AND pending_txn_id = ?",
        )
        .bind(&q.appservice_id)
        .bind(txn_id)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(position) = q.position {
        sqlx::query(
            "UPDATE appservice_queues SET position = ?
             WHERE appservice_id = ? AND pending_txn_id IS NULL AND position < ?",
        )
        .bind(position)
        .bind(&q.appservice_id)
        .bind(position)
        .execute(&mut *conn)
        .await?;
    }
    if let Some((txn_id, last_stream, body)) = &q.pending {
        sqlx::query(
            "UPDATE appservice_queues
             SET pending_txn_id = ?, pending_last_stream = ?, pending_body = ?
             WHERE appservice_id = ? AND pending_txn_id IS NULL",
        )
        .bind(txn_id)
        .bind(last_stream)
        .bind(body)
        .bind(&q.appservice_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
