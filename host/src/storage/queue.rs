//! Durable delivery queues: for each destination, the stream position it has acknowledged up
//! to and its one transaction in flight. Every kind of destination has the same operations
//! over a table of the same shape, chosen by its [`QueueKind`]: a push gateway's or a remote
//! server's queue is a new variant, not new SQL.

use sqlx::SqliteConnection;

use super::{Result, Storage};

/// Whose queue it is: the kind decides the table, the id names the queue in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// An HTTP application service.
    Appservice,
    /// A WASM plugin. A plugin is an application service to the delivery queue: its queue is
    /// a row of the same table under its id, so that an id keeps one queue whichever runs it.
    Plugin,
}

impl QueueKind {
    /// The table of this kind's queues.
    fn table(self) -> &'static str {
        match self {
            QueueKind::Appservice | QueueKind::Plugin => "appservice_queues",
        }
    }

    /// The column of [`table`](Self::table) that holds a queue's id.
    fn key(self) -> &'static str {
        match self {
            QueueKind::Appservice | QueueKind::Plugin => "appservice_id",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub position: i64,
    pub next_txn_id: i64,
    pub pending_txn_id: Option<i64>,
    pub pending_last_stream: Option<i64>,
    pub pending_body: Option<String>,
}

/// One step of a delivery queue, applied in this order: acknowledge the transaction in
/// flight, move the position past unwanted events, store the next transaction. It goes
/// through the group-commit writer (sharing its commits instead of contending with it for
/// SQLite's write lock) and takes no stream position.
#[derive(Debug, Clone)]
pub struct QueueWrite {
    pub kind: QueueKind,
    pub id: String,
    pub ack: Option<i64>,
    pub position: Option<i64>,
    /// `(txn_id, last_stream, body)`.
    pub pending: Option<(i64, i64, String)>,
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
    pub async fn queue(&self, kind: QueueKind, id: &str, start: i64) -> Result<QueueRow> {
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

    /// Acknowledges the transaction in flight of a queue without delivering it, if it is
    /// `txn_id`; `false` when the queue has another (or none).
    pub async fn skip_pending_txn(&self, kind: QueueKind, id: &str, txn_id: i64) -> Result<bool> {
        let mut conn = self.pool().acquire().await?;
        acknowledge(&mut conn, kind, id, txn_id).await
    }

    /// A queue as it is, without making one: its acknowledged position, the events stored
    /// after it, and the transaction in flight (its id and number of events).
    pub async fn queue_backlog(&self, kind: QueueKind, id: &str) -> Result<Option<Backlog>> {
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

/// What a destination has not acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// The stream position up to which it has acknowledged (or was not interested).
    pub position: i64,
    /// Events stored after `position`, whether it wants them or not: the distance its queue
    /// has still to go, and an upper bound on the events it will be sent.
    pub events_after: i64,
    /// The transaction in flight, sent again until acknowledged.
    pub pending_txn_id: Option<i64>,
    /// The events in that transaction.
    pub pending_events: i64,
}
