//! Durable delivery queues: for each destination, the stream position it has acknowledged up
//! to and its one transaction in flight. Every kind of destination has the same operations
//! over a table of the same shape, chosen by its [`QueueKind`]: a push gateway's or a remote
//! server's queue is a new variant, not new SQL.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// Whose queue it is: the kind decides the table, the id names the queue in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QueueKind {
    /// An HTTP application service.
    Appservice,
    /// A WASM plugin. A plugin is an application service to the delivery queue: its queue is
    /// a row of the same table under its id, so that an id keeps one queue whichever runs it.
    Plugin,
    /// A pusher's push gateway, by [`PusherKey::queue_id`](super::pushers::PusherKey::queue_id).
    Push,
    /// A remote server, by its server name.
    Federation,
}

impl QueueKind {
    /// The table of this kind's queues.
    fn table(self) -> &'static str {
        match self {
            QueueKind::Appservice | QueueKind::Plugin => "appservice_queues",
            QueueKind::Push => "pusher_queues",
            QueueKind::Federation => "federation_queues",
        }
    }

    /// The column of [`table`](Self::table) that holds a queue's id.
    fn key(self) -> &'static str {
        match self {
            QueueKind::Appservice | QueueKind::Plugin => "appservice_id",
            QueueKind::Push => "pusher",
            QueueKind::Federation => "destination",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct QueueRow {
    pub(crate) position: i64,
    pub(crate) next_txn_id: i64,
    pub(crate) pending_txn_id: Option<i64>,
    pub(crate) pending_last_stream: Option<i64>,
    pub(crate) pending_body: Option<String>,
}

/// One step of a delivery queue, applied in this order: acknowledge the transaction in
/// flight, move the position past unwanted events, store the next transaction. It goes
/// through the group-commit writer (sharing its commits instead of contending with it for
/// SQLite's write lock) and takes no stream position.
#[derive(Debug, Clone)]
pub(crate) struct QueueWrite {
    pub(crate) kind: QueueKind,
    pub(crate) id: String,
    pub(crate) ack: Option<i64>,
    pub(crate) position: Option<i64>,
    /// `(txn_id, last_stream, body)`.
    pub(crate) pending: Option<(i64, i64, String)>,
}

impl QueueWrite {
    /// Applies the step inside the writer's transaction.
    pub(super) async fn apply(&self, conn: &mut SqliteConnection) -> Result<()> {
        let (kind, id) = (self.kind, self.id.as_str());
        if let Some(txn_id) = self.ack {
            acknowledge(conn, kind, id, txn_id).await?;
        }
        if let Some(position) = self.position {
            sqlx::query(&format!(
                "UPDATE {} SET position = ?
                 WHERE {} = ? AND pending_txn_id IS NULL AND position < ?",
                kind.table(),
                kind.key()
            ))
            .bind(position)
            .bind(id)
            .bind(position)
            .execute(&mut *conn)
            .await?;
        }
        if let Some((txn_id, last_stream, body)) = &self.pending {
            sqlx::query(&format!(
                "UPDATE {} SET pending_txn_id = ?, pending_last_stream = ?, pending_body = ?
                 WHERE {} = ? AND pending_txn_id IS NULL",
                kind.table(),
                kind.key()
            ))
            .bind(txn_id)
            .bind(last_stream)
            .bind(body)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Acknowledges the transaction in flight of a queue if it is `txn_id`: the position moves to
/// its end and the next txn id follows it. `false` when the queue has another (or none).
async fn acknowledge(
    conn: &mut SqliteConnection,
    kind: QueueKind,
    id: &str,
    txn_id: i64,
) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {} SET position = pending_last_stream, next_txn_id = pending_txn_id + 1,
             pending_txn_id = NULL, pending_last_stream = NULL, pending_body = NULL
         WHERE {} = ? AND pending_txn_id = ?",
        kind.table(),
        kind.key()
    ))
    .bind(id)
    .bind(txn_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Makes a queue starting at `position` whose txn ids start at `next_txn_id`.
pub(super) async fn create(
    conn: &mut SqliteConnection,
    kind: QueueKind,
    id: &str,
    position: i64,
    next_txn_id: i64,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {} ({}, position, next_txn_id) VALUES (?, ?, ?)",
        kind.table(),
        kind.key()
    ))
    .bind(id)
    .bind(position)
    .bind(next_txn_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a queue, with any transaction in flight.
pub(super) async fn delete(conn: &mut SqliteConnection, kind: QueueKind, id: &str) -> Result<()> {
    sqlx::query(&format!(
        "DELETE FROM {} WHERE {} = ?",
        kind.table(),
        kind.key()
    ))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

impl Storage {
    /// A queue, made at `start` (its first position) if it has none yet.
    pub(crate) async fn queue(&self, kind: QueueKind, id: &str, start: i64) -> Result<QueueRow> {
        let (table, key) = (kind.table(), kind.key());
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO {table} ({key}, position) VALUES (?, ?)"
        ))
        .bind(id)
        .bind(start)
        .execute(self.pool())
        .await?;
        Ok(sqlx::query_as(&format!(
            "SELECT position, next_txn_id, pending_txn_id, pending_last_stream, pending_body
             FROM {table} WHERE {key} = ?"
        ))
        .bind(id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Makes a queue at `position` whose txn ids start at `next_txn_id`, unless it has one;
    /// `true` when it was made.
    pub(crate) async fn make_queue(
        &self,
        kind: QueueKind,
        id: &str,
        position: i64,
        next_txn_id: i64,
    ) -> Result<bool> {
        let made = sqlx::query(&format!(
            "INSERT OR IGNORE INTO {} ({}, position, next_txn_id) VALUES (?, ?, ?)",
            kind.table(),
            kind.key()
        ))
        .bind(id)
        .bind(position)
        .bind(next_txn_id)
        .execute(self.pool())
        .await?;
        Ok(made.rows_affected() > 0)
    }

    /// The ids of every queue of a kind.
    pub(crate) async fn queue_ids(&self, kind: QueueKind) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT {key} FROM {} ORDER BY {key}",
            kind.table(),
            key = kind.key()
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Acknowledges the transaction in flight of a queue without delivering it, if it is
    /// `txn_id`; `false` when the queue has another (or none).
    pub(crate) async fn skip_pending_txn(
        &self,
        kind: QueueKind,
        id: &str,
        txn_id: i64,
    ) -> Result<bool> {
        let mut conn = self.pool().acquire().await?;
        acknowledge(&mut conn, kind, id, txn_id).await
    }

    /// A queue as it is, without making one: its acknowledged position, the events stored
    /// after it, and the transaction in flight (its id and number of events).
    pub(crate) async fn queue_backlog(&self, kind: QueueKind, id: &str) -> Result<Option<Backlog>> {
        let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(&format!(
            "SELECT position, pending_txn_id, pending_body FROM {} WHERE {} = ?",
            kind.table(),
            kind.key()
        ))
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
                // A remote server's transaction holds `pdus`; the others' `events`.
                let body: serde_json::Value = serde_json::from_str(&body)?;
                let items = |key: &str| body[key].as_array().map_or(0, Vec::len);
                (items("events") + items("pdus")) as i64
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

/// What a destination has not acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// The stream position up to which it has acknowledged (or was not interested).
    pub(crate) position: i64,
    /// Events stored after `position`, whether it wants them or not: the distance its queue
    /// has still to go, and an upper bound on the events it will be sent.
    pub(crate) events_after: i64,
    /// The transaction in flight, sent again until acknowledged.
    pub(crate) pending_txn_id: Option<i64>,
    /// The events in that transaction.
    pub(crate) pending_events: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [QueueKind; 4] = [
        QueueKind::Appservice,
        QueueKind::Plugin,
        QueueKind::Push,
        QueueKind::Federation,
    ];

    fn step(kind: QueueKind, id: &str) -> QueueWrite {
        QueueWrite {
            kind,
            id: id.into(),
            ack: None,
            position: None,
            pending: None,
        }
    }

    fn pending(kind: QueueKind, id: &str, txn_id: i64, last_stream: i64) -> QueueWrite {
        QueueWrite {
            pending: Some((txn_id, last_stream, format!("{{\"txn\":{txn_id}}}"))),
            ..step(kind, id)
        }
    }

    async fn apply(s: &Storage, w: QueueWrite) {
        let mut conn = s.pool().acquire().await.unwrap();
        w.apply(&mut conn).await.unwrap();
    }

    /// `(position, next_txn_id, pending_txn_id, pending_last_stream)`.
    async fn state(s: &Storage, kind: QueueKind, id: &str) -> (i64, i64, Option<i64>, Option<i64>) {
        let q = s.queue(kind, id, 0).await.unwrap();
        (
            q.position,
            q.next_txn_id,
            q.pending_txn_id,
            q.pending_last_stream,
        )
    }

    #[tokio::test]
    async fn a_queue_is_made_once_at_its_start_and_then_read_as_it_is() {
        let (_dir, s) = crate::storage::temporary().await;
        for kind in KINDS {
            let made = s.queue(kind, "a", 5).await.unwrap();
            assert_eq!((made.position, made.next_txn_id), (5, 1));
            apply(&s, pending(kind, "a", 1, 9)).await;
            let again = s.queue(kind, "a", 7).await.unwrap();
            assert_eq!(again.position, 5, "{kind:?}");
            assert_eq!(again.pending_body.as_deref(), Some("{\"txn\":1}"));
            let mut conn = s.pool().acquire().await.unwrap();
            delete(&mut conn, kind, "a").await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_acknowledgement_moves_the_position_to_the_end_of_the_transaction_in_flight() {
        let (_dir, s) = crate::storage::temporary().await;
        for kind in KINDS {
            s.queue(kind, "a", 5).await.unwrap();
            apply(&s, pending(kind, "a", 1, 9)).await;
            assert_eq!(state(&s, kind, "a").await, (5, 1, Some(1), Some(9)));
            apply(
                &s,
                QueueWrite {
                    ack: Some(1),
                    ..step(kind, "a")
                },
            )
            .await;
            assert_eq!(state(&s, kind, "a").await, (9, 2, None, None), "{kind:?}");
            let mut conn = s.pool().acquire().await.unwrap();
            delete(&mut conn, kind, "a").await.unwrap();
        }
    }

    #[tokio::test]
    async fn skipping_acknowledges_only_the_transaction_in_flight() {
        let (_dir, s) = crate::storage::temporary().await;
        s.queue(QueueKind::Plugin, "p", 0).await.unwrap();
        assert!(!s.skip_pending_txn(QueueKind::Plugin, "p", 1).await.unwrap());
        apply(&s, pending(QueueKind::Plugin, "p", 3, 20)).await;
        assert!(!s.skip_pending_txn(QueueKind::Plugin, "p", 2).await.unwrap());
        assert_eq!(
            state(&s, QueueKind::Plugin, "p").await,
            (0, 1, Some(3), Some(20))
        );
        assert!(s.skip_pending_txn(QueueKind::Plugin, "p", 3).await.unwrap());
        assert_eq!(state(&s, QueueKind::Plugin, "p").await, (20, 4, None, None));
        assert!(!s.skip_pending_txn(QueueKind::Plugin, "p", 3).await.unwrap());
    }

    #[tokio::test]
    async fn the_position_moves_past_unwanted_events_only_forward_and_never_under_a_transaction() {
        let (_dir, s) = crate::storage::temporary().await;
        let kind = QueueKind::Appservice;
        s.queue(kind, "a", 10).await.unwrap();
        let to = |position| QueueWrite {
            position: Some(position),
            ..step(kind, "a")
        };
        apply(&s, to(15)).await;
        apply(&s, to(12)).await;
        assert_eq!(state(&s, kind, "a").await.0, 15);
        apply(&s, pending(kind, "a", 1, 18)).await;
        apply(&s, to(30)).await;
        assert_eq!(state(&s, kind, "a").await, (15, 1, Some(1), Some(18)));
    }

    #[tokio::test]
    async fn a_transaction_in_flight_is_never_replaced_by_another() {
        let (_dir, s) = crate::storage::temporary().await;
        let kind = QueueKind::Appservice;
        s.queue(kind, "a", 0).await.unwrap();
        apply(&s, pending(kind, "a", 1, 5)).await;
        apply(&s, pending(kind, "a", 2, 8)).await;
        assert_eq!(state(&s, kind, "a").await, (0, 1, Some(1), Some(5)));
    }

    #[tokio::test]
    async fn one_step_acknowledges_then_moves_on_then_stores_the_next_transaction() {
        let (_dir, s) = crate::storage::temporary().await;
        let kind = QueueKind::Plugin;
        s.queue(kind, "p", 0).await.unwrap();
        apply(&s, pending(kind, "p", 1, 5)).await;
        apply(
            &s,
            QueueWrite {
                ack: Some(1),
                position: Some(7),
                ..pending(kind, "p", 2, 9)
            },
        )
        .await;
        assert_eq!(state(&s, kind, "p").await, (7, 2, Some(2), Some(9)));
    }

    #[tokio::test]
    async fn a_queue_is_made_with_its_first_txn_id_and_deleted_with_its_transaction() {
        let (_dir, s) = crate::storage::temporary().await;
        for kind in KINDS {
            let mut conn = s.pool().acquire().await.unwrap();
            create(&mut conn, kind, "q", 4, 1_000).await.unwrap();
            drop(conn);
            assert_eq!(state(&s, kind, "q").await, (4, 1_000, None, None));
            apply(&s, pending(kind, "q", 1_000, 6)).await;
            let backlog = s.queue_backlog(kind, "q").await.unwrap();
            assert_eq!(
                backlog.map(|b| (b.position, b.pending_txn_id)),
                Some((4, Some(1_000)))
            );
            let mut conn = s.pool().acquire().await.unwrap();
            delete(&mut conn, kind, "q").await.unwrap();
            drop(conn);
            assert_eq!(s.queue_backlog(kind, "q").await.unwrap(), None, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_queue_made_with_its_txn_ids_is_made_once_and_listed_by_kind() {
        let (_dir, s) = crate::storage::temporary().await;
        let kind = QueueKind::Federation;
        assert!(s.make_queue(kind, "b.example", 7, 1_000).await.unwrap());
        assert!(!s.make_queue(kind, "b.example", 9, 5).await.unwrap());
        assert!(s.make_queue(kind, "a.example", 3, 1).await.unwrap());
        assert_eq!(state(&s, kind, "b.example").await, (7, 1_000, None, None));
        assert_eq!(s.queue_ids(kind).await.unwrap(), ["a.example", "b.example"]);
        assert!(s.queue_ids(QueueKind::Push).await.unwrap().is_empty());
        apply(
            &s,
            QueueWrite {
                pending: Some((1_000, 9, r#"{"pdus":[1,2],"edus":[3]}"#.into())),
                ..step(kind, "b.example")
            },
        )
        .await;
        let backlog = s.queue_backlog(kind, "b.example").await.unwrap().unwrap();
        assert_eq!(backlog.pending_events, 2, "the PDUs of the transaction");
    }
}
