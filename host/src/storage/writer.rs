//! Group commit. Everything that takes a stream position (events, account data, receipts)
//! is queued here; one task drains the queue and commits what is waiting in a single SQLite
//! transaction, so concurrent sends share one fsync. Each caller hears back only after its
//! write is durable, which keeps the "a 200 survives kill -9" promise.

use sqlx::pool::PoolConnection;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, Transaction};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::plugins::PluginEffects;
use super::{Result, Storage, StorageError};

/// At most this many writes share one database transaction.
const MAX_BATCH: usize = 512;

/// `(user, device, scope, txn_id)`: the scope is the room and event type of the request.
pub type TxnRow = (String, String, String, String);

/// A new event and the derived rows that must commit with it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub kind: String,
    pub state_key: Option<String>,
    pub depth: i64,
    pub origin_server_ts: i64,
    pub json: String,
    /// The member whose membership this event sets, and to what.
    pub membership: Option<(String, String)>,
    /// For idempotent client sends.
    pub txn: Option<TxnRow>,
    pub redacts: Option<String>,
    /// Set on a room's create event: `(room_version, creator)`.
    pub new_room: Option<(String, String)>,
    /// The room's history visibility when the event was sent.
    pub history_visibility: Option<String>,
}

/// One step of an application service's delivery queue, applied in this order: acknowledge
/// the transaction in flight, move the position past unwanted events, store the next
/// transaction. It takes no stream position.
#[derive(Debug, Clone)]
pub struct QueueWrite {
    pub appservice_id: String,
    pub ack: Option<i64>,
    pub position: Option<i64>,
    /// `(txn_id, last_stream, body)`.
    pub pending: Option<(i64, i64, String)>,
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    Event(Box<NewEvent>),
    /// Queue writes go through the writer so that they share its commits instead of
    /// contending with it for SQLite's write lock.
    Queue(QueueWrite),
    /// What a call into a plugin wrote to its store and timers; for the same reason.
    Plugin(Box<PluginEffects>),
    AccountData {
        user_id: String,
        room_id: String,
        kind: String,
        content: String,
    },
    Receipt {
        room_id: String,
        user_id: String,
        receipt_type: String,
        thread_id: String,
        event_id: String,
        ts: i64,
    },
}

impl WriteOp {
    /// Events, account data and receipts take a stream position; queue steps and plugin
    /// effects do not.
    fn takes_position(&self) -> bool {
        !matches!(self, WriteOp::Queue(_) | WriteOp::Plugin(_))
    }
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<i64>>,
}

/// The handle services use; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task; `next_stream` is one past the highest stored position.
    /// `on_commit` hears every committed batch, in stream order, before any caller does, so
    /// whatever it wakes sees the whole batch.
    pub fn start(storage: Storage, next_stream: i64, on_commit: OnCommit) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(storage, rx, next_stream, on_commit));
        Writer { tx }
    }

    /// Queues `op` and waits until it is committed; answers its stream position. Ops queued
    /// from one task commit in the order they were queued.
    pub async fn write(&self, op: WriteOp) -> Result<i64> {
        self.submit(op)
            .await
            .unwrap_or(Err(StorageError::WriterGone))
    }

    /// Queues `op` now and returns a receiver for its commit, so that a caller can queue
    /// while holding a lock and wait after releasing it.
    pub fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<i64>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { op, reply }) {
            let _ = job.reply.send(Err(StorageError::WriterGone));
        }
        rx
    }
}

/// Called with each committed batch: `(stream, op)` in stream order.
pub type OnCommit = Box<dyn Fn(&[(i64, &WriteOp)]) + Send + Sync>;

async fn run(
    storage: Storage,
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut next_stream: i64,
    on_commit: OnCommit,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // One connection kept for all commits: no pool hand-out per batch. Dropped after a
    // failure, so a retry starts on a fresh one.
    let mut conn: Option<PoolConnection<Sqlite>> = None;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut attempt = 0;
        let result = loop {
            let result = match conn.as_mut() {
                Some(c) => commit(c, &batch, next_stream).await,
                None => match storage.pool().acquire().await {
                    Ok(c) => commit(conn.insert(c), &batch, next_stream).await,
                    Err(e) => Err(e.into()),
                },
            };
            match result {
                Err(e) if attempt < COMMIT_RETRIES.len() => {
                    tracing::warn!(error = %e, jobs = batch.len(), attempt, "group commit failed; retrying");
                    conn = None;
                    tokio::time::sleep(COMMIT_RETRIES[attempt]).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        match result {
            Ok(()) => {
                let positions = positions(&batch, next_stream);
                let committed: Vec<(i64, &WriteOp)> = positions
                    .iter()
                    .zip(batch.iter())
                    .filter(|(_, job)| job.op.takes_position())
                    .map(|(p, job)| (*p, &job.op))
                    .collect();
                if !committed.is_empty() {
                    on_commit(&committed);
                }
                next_stream += committed.len() as i64;
                for (position, job) in positions.into_iter().zip(batch.drain(..)) {
                    let _ = job.reply.send(Ok(position));
                }
            }
            Err(e) => {
                // Later writes were built on top of these (an event's prev_events, the state
                // its auth check saw): committing them past a hole would store a room the
                // database cannot explain. Stop writing; a restart reloads from what is stored.
                tracing::error!(error = %e, jobs = batch.len(), "group commit keeps failing; the writer stops");
                rx.close();
                let msg = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StorageError::Failed(msg.clone())));
                }
                while let Some(job) = rx.recv().await {
                    let _ = job.reply.send(Err(StorageError::WriterGone));
                }
                return;
            }
        }
    }
}

/// Pauses before each retry of a failed commit (disk full, I/O error, a lock held too long).
const COMMIT_RETRIES: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// The stream position each job takes, from `first`, densely; the others take none (0).
fn positions(batch: &[Job], first: i64) -> Vec<i64> {
    let mut next = first;
    batch
        .iter()
        .map(|job| {
            if job.op.takes_position() {
                next += 1;
                next - 1
            } else {
                0
            }
        })
        .collect()
}

async fn commit(conn: &mut SqliteConnection, batch: &[Job], first_stream: i64) -> Result<()> {
    let mut tx = conn.begin().await?;
    let positioned: Vec<(i64, &WriteOp)> = positions(batch, first_stream)
        .into_iter()
        .zip(batch.iter().map(|job| &job.op))
        .collect();
    // Events and their txn ids go in as multi-row inserts: one statement for many rows
    // instead of a round trip to SQLite's thread per row.
    let events: Vec<(i64, &NewEvent)> = positioned
        .iter()
        .filter_map(|(stream, op)| match op {
            WriteOp::Event(e) => Some((*stream, e.as_ref())),
            _ => None,
        })
        .collect();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        insert_events(&mut tx, chunk).await?;
        insert_txn_ids(&mut tx, chunk).await?;
    }
    for (stream, op) in positioned {
        apply(&mut tx, op, stream).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rows per multi-row insert; 12 bound values a row stays far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 256;

async fn insert_events(tx: &mut Transaction<'_, Sqlite>, rows: &[(i64, &NewEvent)]) -> Result<()> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (stream, event_id, room_id, sender, type, state_key, depth,
            origin_server_ts, json, txn_device, txn_id, history_visibility) ",
    );
    q.push_values(rows, |mut b, (stream, e)| {
        let (txn_device, txn_id) = match &e.txn {
            Some((_, device, _, txn)) => (Some(device.as_str()), Some(txn.as_str())),
            None => (None, None),
        };
        b.push_bind(*stream)
            .push_bind(e.event_id.as_str())
            .push_bind(e.room_id.as_str())
            .push_bind(e.sender.as_str())
            .push_bind(e.kind.as_str())
            .push_bind(e.state_key.as_deref())
            .push_bind(e.depth)
            .push_bind(e.origin_server_ts)
            .push_bind(e.json.as_str())
            .push_bind(txn_device)
            .push_bind(txn_id)
            .push_bind(e.history_visibility.as_deref());
    });
    q.build().execute(&mut **tx).await?;
    Ok(())
}

async fn insert_txn_ids(tx: &mut Transaction<'_, Sqlite>, rows: &[(i64, &NewEvent)]) -> Result<()> {
    let with_txn: Vec<(&NewEvent, &TxnRow)> = rows
        .iter()
        .filter_map(|(_, e)| e.txn.as_ref().map(|t| (*e, t)))
        .collect();
    if with_txn.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT OR IGNORE INTO txn_ids (user_id, device_id, scope, txn_id, event_id) ",
    );
    q.push_values(with_txn, |mut b, (e, (user, device, scope, txn))| {
        b.push_bind(user.as_str())
            .push_bind(device.as_str())
            .push_bind(scope.as_str())
            .push_bind(txn.as_str())
            .push_bind(e.event_id.as_str());
    });
    q.build().execute(&mut **tx).await?;
    Ok(())
}

async fn apply(tx: &mut Transaction<'_, Sqlite>, op: &WriteOp, stream: i64) -> Result<()> {
    match op {
        WriteOp::Event(e) => {
            if let Some((version, creator)) = &e.new_room {
                sqlx::query(
                    "INSERT INTO rooms (room_id, room_version, creator, created_ts)
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&e.room_id)
                .bind(version)
                .bind(creator)
                .bind(e.origin_server_ts)
                .execute(&mut **tx)
                .await?;
            }
            if let Some(state_key) = &e.state_key {
                sqlx::query(
                    "INSERT INTO room_state (room_id, type, state_key, event_id, stream)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (room_id, type, state_key)
                     DO UPDATE SET event_id = excluded.event_id, stream = excluded.stream",
                )
                .bind(&e.room_id)
                .bind(&e.kind)
                .bind(state_key)
                .bind(&e.event_id)
                .bind(stream)
                .execute(&mut **tx)
                .await?;
            }
            if let Some((user, membership)) = &e.membership {
                sqlx::query(
                    "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (room_id, user_id) DO UPDATE SET
                        membership = excluded.membership, event_id = excluded.event_id,
                        stream = excluded.stream, forgotten = 0",
                )
                .bind(&e.room_id)
                .bind(user)
                .bind(membership)
                .bind(&e.event_id)
                .bind(stream)
                .execute(&mut **tx)
                .await?;
            }
            if let Some(target) = &e.redacts {
                sqlx::query(
                    "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ?
                        AND redacted_by IS NULL",
                )
                .bind(&e.event_id)
                .bind(target)
                .bind(&e.room_id)
                .execute(&mut **tx)
                .await?;
            }
        }
        WriteOp::Queue(q) => super::appservice::apply_queue_write(tx, q).await?,
        WriteOp::Plugin(e) => super::plugins::apply_effects(tx, e).await?,
        WriteOp::AccountData {
            user_id,
            room_id,
            kind,
            content,
        } => {
            sqlx::query(
                "INSERT INTO account_data (user_id, room_id, type, content, stream)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (user_id, room_id, type)
                 DO UPDATE SET content = excluded.content, stream = excluded.stream",
            )
            .bind(user_id)
            .bind(room_id)
            .bind(kind)
            .bind(content)
            .bind(stream)
            .execute(&mut **tx)
            .await?;
        }
        WriteOp::Receipt {
            room_id,
            user_id,
            receipt_type,
            thread_id,
            event_id,
            ts,
        } => {
            sqlx::query(
                "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (room_id, user_id, receipt_type, thread_id)
                 DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts,
                    stream = excluded.stream",
            )
            .bind(room_id)
            .bind(user_id)
            .bind(receipt_type)
            .bind(thread_id)
            .bind(event_id)
            .bind(ts)
            .bind(stream)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}
