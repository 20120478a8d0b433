//! Read receipts, per room, user, receipt type and thread: their write and their reads.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// Sets a user's receipt of one type and thread in a room; takes a stream position.
#[derive(Debug, Clone)]
pub struct ReceiptWrite {
    pub room_id: String,
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
}

impl ReceiptWrite {
    /// Writes the row inside the writer's transaction, at `stream`.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (room_id, user_id, receipt_type, thread_id)
             DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts,
                stream = excluded.stream",
        )
        .bind(&self.room_id)
        .bind(&self.user_id)
        .bind(&self.receipt_type)
        .bind(&self.thread_id)
        .bind(&self.event_id)
        .bind(self.ts)
        .bind(stream)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReceiptRow {
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
}

/// A receipt with its place in the stream, for readers that walk the stream across rooms.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StreamReceipt {
    pub stream: i64,
    pub room_id: String,
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
}

impl Storage {
    /// Receipts of every room with `after < stream <= upto`, in stream order, at most `limit`.
    pub async fn receipts_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StreamReceipt>> {
        Ok(sqlx::query_as(
            "SELECT stream, room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
             WHERE stream > ? AND stream <= ? ORDER BY stream LIMIT ?",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn receipts_since(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<ReceiptRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, receipt_type, thread_id, event_id, ts FROM receipts
             WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream",
        )
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool())
        .await?)
    }
}
