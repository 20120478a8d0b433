//! Group commit, and nothing else: the SQL of each write is its table family's. Everything
//! that takes a stream position (events, account data, receipts) is queued here, and so are
//! queue steps and plugin writes; one task drains the queue, gives out stream positions in
//! order and commits what is waiting in a single SQLite transaction, so concurrent sends
//! share one fsync. Each caller hears back only after its write is durable, which keeps the
//! "a 200 survives kill -9" promise.

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::account_data::AccountDataWrite;
use super::events::{self, NewEvent};
use super::plugins::PluginWrite;
use super::queue::QueueWrite;
use super::receipts::ReceiptWrite;
use super::{Result, Storage, StorageError};

/// At most this many writes share one database transaction.
const MAX_BATCH: usize = 512;

/// One write, of one table family; the family's module holds its SQL.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Event(Box<NewEvent>),
    /// Queue writes go through the writer so that they share its commits instead of
    /// contending with it for SQLite's write lock.
    Queue(QueueWrite),
    /// What a call into a plugin wrote to its store and timers; for the same reason.
    Plugin(Box<PluginWrite>),
    AccountData(AccountDataWrite),
    Receipt(ReceiptWrite),
}

impl WriteOp {
    /// Events, account data and receipts take a stream position; queue steps and plugin
    /// writes do not.
    fn takes_position(&self) -> bool {
        !matches!(self, WriteOp::Queue(_) | WriteOp::Plugin(_))
    }

    /// Writes what [`events::insert`] has not, inside the batch's transaction.
    async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        match self {
            WriteOp::Event(e) => e.apply(conn, stream).await,
            WriteOp::Queue(q) => q.apply(conn).await,
            WriteOp::Plugin(p) => p.apply(conn).await,
            WriteOp::AccountData(a) => a.apply(conn, stream).await,
            WriteOp::Receipt(r) => r.apply(conn, stream).await,
        }
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
    // The batch's events go in first, together (see `events::insert`); then each write in
    // the order queued, events' derived rows included.
    let new_events: Vec<(i64, &NewEvent)> = positioned
        .iter()
        .filter_map(|(stream, op)| match op {
            WriteOp::Event(e) => Some((*stream, e.as_ref())),
            _ => None,
        })
        .collect();
    events::insert(&mut tx, &new_events).await?;
    for (stream, op) in positioned {
        op.apply(&mut tx, stream).await?;
    }
    tx.commit().await?;
    Ok(())
}
