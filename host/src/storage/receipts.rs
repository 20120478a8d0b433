//! Read receipts, per room, user, receipt type and thread: their write and their reads.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// Sets a user's receipt of one type and thread in a room; takes a stream position.
#[derive(Debug, Clone)]
pub(crate) struct ReceiptWrite {
    pub(crate) room_id: String,
    pub(crate) user_id: String,
    pub(crate) receipt_type: String,
    pub(crate) thread_id: String,
    pub(crate) event_id: String,
    pub(crate) ts: i64,
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
pub(crate) struct ReceiptRow {
    pub(crate) user_id: String,
    pub(crate) receipt_type: String,
    pub(crate) thread_id: String,
    pub(crate) event_id: String,
    pub(crate) ts: i64,
}

/// A receipt with its place in the stream, for readers that walk the stream across rooms.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StreamReceipt {
    pub(crate) stream: i64,
    pub(crate) room_id: String,
    pub(crate) user_id: String,
    pub(crate) receipt_type: String,
    pub(crate) event_id: String,
    pub(crate) ts: i64,
}

impl Storage {
    /// Receipts of every room with `after < stream <= upto`, in stream order, at most `limit`.
    pub(crate) async fn receipts_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StreamReceipt>> {
        Ok(sqlx::query_as(
            "SELECT stream, room_id, user_id, receipt_type, event_id, ts FROM receipts
             WHERE stream > ? AND stream <= ? ORDER BY stream LIMIT ?",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    pub(crate) async fn receipts_since(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(thread_id: &str, event_id: &str, ts: i64) -> ReceiptWrite {
        ReceiptWrite {
            room_id: "!r:x".into(),
            user_id: "@a:x".into(),
            receipt_type: "m.read".into(),
            thread_id: thread_id.into(),
            event_id: event_id.into(),
            ts,
        }
    }

    #[tokio::test]
    async fn a_receipt_moves_on_within_its_thread_and_a_thread_keeps_its_own() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        receipt("", "$1", 10).apply(&mut conn, 1).await.unwrap();
        receipt("$t", "$2", 20).apply(&mut conn, 2).await.unwrap();
        receipt("", "$3", 30).apply(&mut conn, 3).await.unwrap();
        drop(conn);

        let rows = s.receipts_since("!r:x", 0, 3).await.unwrap();
        let rows: Vec<_> = rows
            .into_iter()
            .map(|r| (r.thread_id, r.event_id, r.ts))
            .collect();
        assert_eq!(
            rows,
            [
                ("$t".into(), "$2".into(), 20),
                (String::new(), "$3".into(), 30)
            ]
        );
        let range = s.receipts_range(2, 3, 10).await.unwrap();
        assert_eq!(range.iter().map(|r| r.stream).collect::<Vec<_>>(), [3]);
    }
}
