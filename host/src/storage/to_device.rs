//! To-device messages: queued per device through the writer (one send takes one stream
//! position), read by the device's /sync and deleted once it acknowledges them.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// At most this many messages wait for one device; a send beyond it drops the oldest.
pub(crate) const MAX_WAITING: i64 = 1000;

/// One send: the same event type from one sender to many devices, each with its content.
#[derive(Debug, Clone)]
pub(crate) struct ToDeviceWrite {
    pub(crate) sender: String,
    pub(crate) sender_device: String,
    pub(crate) txn_id: String,
    pub(crate) kind: String,
    /// (user, device, content JSON).
    pub(crate) messages: Vec<(String, String, String)>,
}

impl ToDeviceWrite {
    /// Queues the messages unless the sender's device already used the transaction id.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        let first = sqlx::query(
            "INSERT OR IGNORE INTO to_device_txns (user_id, device_id, txn_id, stream)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&self.sender)
        .bind(&self.sender_device)
        .bind(&self.txn_id)
        .bind(stream)
        .execute(&mut *conn)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(());
        }
        for (user, device, content) in &self.messages {
            sqlx::query(
                "INSERT INTO to_device (user_id, device_id, stream, sender, type, content)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(user)
            .bind(device)
            .bind(stream)
            .bind(&self.sender)
            .bind(&self.kind)
            .bind(content)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND stream <= (
                    SELECT stream FROM to_device WHERE user_id = ?1 AND device_id = ?2
                    ORDER BY stream DESC LIMIT 1 OFFSET ?3)",
            )
            .bind(user)
            .bind(device)
            .bind(MAX_WAITING)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// A waiting message as /sync hands it out.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ToDeviceRow {
    pub(crate) stream: i64,
    pub(crate) sender: String,
    #[sqlx(rename = "type")]
    pub(crate) kind: String,
    pub(crate) content: String,
}

/// A waiting message with its recipient, as an application service's transaction reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct AddressedRow {
    pub(crate) stream: i64,
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    pub(crate) sender: String,
    #[sqlx(rename = "type")]
    pub(crate) kind: String,
    pub(crate) content: String,
}

impl Storage {
    /// Every device's waiting messages with `after < stream <= upto`, in stream order: the
    /// first `limit`, and the rest of the last one's send, so that a send to many devices is
    /// never cut in two. Fewer than `limit` rows means the whole range.
    pub(crate) async fn to_device_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<AddressedRow>> {
        Ok(sqlx::query_as(
            "SELECT stream, user_id, device_id, sender, type, content FROM to_device
             WHERE stream > ?1 AND stream <= COALESCE((
                SELECT stream FROM to_device WHERE stream > ?1 AND stream <= ?2
                ORDER BY stream LIMIT 1 OFFSET ?3 - 1), ?2)
             ORDER BY stream, user_id, device_id",
        )
        .bind(after)
        .bind(upto)
        .bind(limit.max(1))
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes the messages for the users of `server` (another server) that its outgoing
    /// queue has sent: those up to the queue's stored position, which only moves past what
    /// the server acknowledged.
    pub(crate) async fn forget_sent_to_device(&self, server: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM to_device
             WHERE stream <= (SELECT position FROM federation_queues WHERE destination = ?1)
               AND substr(user_id, -length(?1) - 1) = ':' || ?1",
        )
        .bind(server)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the device's messages up to `upto`, which it has acknowledged.
    pub(crate) async fn acknowledge_to_device(
        &self,
        user_id: &str,
        device_id: &str,
        upto: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND stream <= ?")
            .bind(user_id)
            .bind(device_id)
            .bind(upto)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The device's waiting messages up to `upto`, oldest first.
    pub(crate) async fn to_device_waiting(
        &self,
        user_id: &str,
        device_id: &str,
        upto: i64,
    ) -> Result<Vec<ToDeviceRow>> {
        Ok(sqlx::query_as(
            "SELECT stream, sender, type, content FROM to_device
             WHERE user_id = ? AND device_id = ? AND stream <= ? ORDER BY stream",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(upto)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::queue::QueueKind;

    fn send(txn: &str, to: &[(&str, &str)]) -> ToDeviceWrite {
        ToDeviceWrite {
            sender: "@a:x".into(),
            sender_device: "A".into(),
            txn_id: txn.into(),
            kind: "m.test".into(),
            messages: to
                .iter()
                .map(|(u, d)| (u.to_string(), d.to_string(), "{}".into()))
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_transaction_id_used_again_queues_nothing() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        send("t1", &[("@b:x", "B")])
            .apply(&mut conn, 1)
            .await
            .unwrap();
        send("t1", &[("@b:x", "B")])
            .apply(&mut conn, 2)
            .await
            .unwrap();
        drop(conn);
        let waiting = s.to_device_waiting("@b:x", "B", 10).await.unwrap();
        assert_eq!(waiting.iter().map(|r| r.stream).collect::<Vec<_>>(), [1]);
    }

    #[tokio::test]
    async fn past_the_bound_the_oldest_message_goes() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        for i in 1..=MAX_WAITING + 2 {
            send(&i.to_string(), &[("@b:x", "B")])
                .apply(&mut conn, i)
                .await
                .unwrap();
        }
        drop(conn);
        let waiting = s.to_device_waiting("@b:x", "B", i64::MAX).await.unwrap();
        assert_eq!(waiting.len() as i64, MAX_WAITING);
        assert_eq!(waiting[0].stream, 3);
    }

    #[tokio::test]
    async fn a_range_read_never_cuts_one_send_in_two() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        send("1", &[("@b:x", "B")])
            .apply(&mut conn, 1)
            .await
            .unwrap();
        send("2", &[("@b:x", "B"), ("@b:x", "C"), ("@c:x", "D")])
            .apply(&mut conn, 2)
            .await
            .unwrap();
        send("3", &[("@b:x", "B")])
            .apply(&mut conn, 3)
            .await
            .unwrap();
        drop(conn);
        let streams = |rows: Vec<AddressedRow>| rows.iter().map(|r| r.stream).collect::<Vec<_>>();
        assert_eq!(
            streams(s.to_device_range(0, 9, 2).await.unwrap()),
            [1, 2, 2, 2]
        );
        assert_eq!(
            streams(s.to_device_range(1, 9, 1).await.unwrap()),
            [2, 2, 2]
        );
        assert_eq!(
            streams(s.to_device_range(0, 9, 100).await.unwrap()),
            [1, 2, 2, 2, 3]
        );
        assert_eq!(
            streams(s.to_device_range(0, 2, 100).await.unwrap()),
            [1, 2, 2, 2]
        );
        let to_c = s.to_device_range(1, 2, 100).await.unwrap();
        assert_eq!(
            (to_c[2].user_id.as_str(), to_c[2].device_id.as_str()),
            ("@c:x", "D")
        );
    }

    #[tokio::test]
    async fn acknowledged_messages_are_deleted_and_later_ones_wait() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        send("1", &[("@b:x", "B"), ("@b:x", "C")])
            .apply(&mut conn, 1)
            .await
            .unwrap();
        send("2", &[("@b:x", "B")])
            .apply(&mut conn, 2)
            .await
            .unwrap();
        drop(conn);
        s.acknowledge_to_device("@b:x", "B", 1).await.unwrap();
        let b = s.to_device_waiting("@b:x", "B", 10).await.unwrap();
        assert_eq!(b.iter().map(|r| r.stream).collect::<Vec<_>>(), [2]);
        assert_eq!(s.to_device_waiting("@b:x", "C", 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn messages_sent_to_a_server_are_forgotten_up_to_a_point_and_only_its_own() {
        let (_dir, s) = crate::storage::temporary().await;
        let mut conn = s.pool().acquire().await.unwrap();
        let to = [
            ("@u:b.example", "*"),
            ("@v:ab.example", "*"),
            ("@w:b.example:8448", "D"),
        ];
        send("t1", &to).apply(&mut conn, 1).await.unwrap();
        send("t2", &to).apply(&mut conn, 2).await.unwrap();
        drop(conn);
        s.forget_sent_to_device("b.example").await.unwrap();
        assert_eq!(
            s.to_device_range(0, 10, 100).await.unwrap().len(),
            6,
            "no queue yet"
        );
        s.make_queue(QueueKind::Federation, "b.example", 1, 1)
            .await
            .unwrap();
        s.forget_sent_to_device("b.example").await.unwrap();
        let left: Vec<(i64, String)> = s
            .to_device_range(0, 10, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.stream, r.user_id))
            .collect();
        assert_eq!(
            left,
            [
                (1, "@v:ab.example".to_string()),
                (1, "@w:b.example:8448".to_string()),
                (2, "@u:b.example".to_string()),
                (2, "@v:ab.example".to_string()),
                (2, "@w:b.example:8448".to_string()),
            ]
        );
    }
}
