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
use super::e2ee_keys::KeysWrite;
use super::events::{self, NewEvent};
use super::graph::SideEvent;
use super::plugins::PluginWrite;
use super::presence::PresenceWrite;
use super::queue::QueueWrite;
use super::receipts::ReceiptWrite;
use super::to_device::ToDeviceWrite;
use super::{Result, Storage, StorageError};

/// At most this many writes share one database transaction.
const MAX_BATCH: usize = 512;

/// One write, of one table family; the family's module holds its SQL.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    Event(Box<NewEvent>),
    /// Queue writes go through the writer so that they share its commits instead of
    /// contending with it for SQLite's write lock.
    Queue(QueueWrite),
    /// What a call into a plugin wrote to its store and timers; for the same reason.
    Plugin(Box<PluginWrite>),
    AccountData(AccountDataWrite),
    Receipt(ReceiptWrite),
    /// Keys other users' clients hear of through `device_lists`.
    Keys(Box<KeysWrite>),
    ToDevice(Box<ToDeviceWrite>),
    Presence(PresenceWrite),
    /// An event of another server kept outside the timeline.
    Side(Box<SideEvent>),
    /// An event of a room's past fetched from another server (`/backfill`), at a position
    /// below every other (`stream` < 0): history, not news to anyone's sync.
    Backfilled {
        stream: i64,
        event: Box<NewEvent>,
    },
    /// Nothing: answered once everything queued before it is committed (see
    /// [`Writer::flush`]).
    Barrier,
}

impl WriteOp {
    /// Events, account data, receipts, key changes, to-device sends and presence take a
    /// stream position; queue steps, plugin writes and (most) events outside the timeline do
    /// not.
    fn takes_position(&self) -> bool {
        match self {
            WriteOp::Queue(_)
            | WriteOp::Plugin(_)
            | WriteOp::Backfilled { .. }
            | WriteOp::Barrier => false,
            // An invite of one of our users to a room of another server is news to their
            // syncs; other events outside the timeline are not.
            WriteOp::Side(e) => e.member.is_some(),
            _ => true,
        }
    }

    /// Writes what [`events::insert`] has not, inside the batch's transaction.
    async fn apply(&self, conn: &mut SqliteConnection, stream: i64) -> Result<()> {
        match self {
            WriteOp::Event(e) => e.apply(conn, stream).await,
            WriteOp::Queue(q) => q.apply(conn).await,
            WriteOp::Plugin(p) => p.apply(conn).await,
            WriteOp::AccountData(a) => a.apply(conn, stream).await,
            WriteOp::Receipt(r) => r.apply(conn, stream).await,
            WriteOp::Keys(k) => k.apply(conn, stream).await,
            WriteOp::ToDevice(t) => t.apply(conn, stream).await,
            WriteOp::Presence(p) => p.apply(conn, stream).await,
            WriteOp::Side(e) => e.apply(conn, stream).await,
            WriteOp::Backfilled { stream, event } => {
                events::insert(conn, &[(*stream, event.as_ref())]).await?;
                event.apply(conn, *stream).await
            }
            WriteOp::Barrier => Ok(()),
        }
    }
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<i64>>,
}

/// The handle services use; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task; `next_stream` is one past the highest stored position.
    /// `on_commit` hears every committed batch, in stream order, before any caller does, so
    /// whatever it wakes sees the whole batch.
    pub(crate) fn start(storage: Storage, next_stream: i64, on_commit: OnCommit) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(storage, rx, next_stream, on_commit));
        Writer { tx }
    }

    /// Queues `op` and waits until it is committed; answers its stream position. Ops queued
    /// from one task commit in the order they were queued.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<i64> {
        self.submit(op)
            .await
            .unwrap_or(Err(StorageError::WriterGone))
    }

    /// Waits until every write queued before this call is committed: a room's head moves
    /// on when its event is queued, so what was read from it may name events not stored yet.
    pub(crate) async fn flush(&self) -> Result<()> {
        self.write(WriteOp::Barrier).await.map(|_| ())
    }

    /// Queues `op` now and returns a receiver for its commit, so that a caller can queue
    /// while holding a lock and wait after releasing it.
    pub(crate) fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<i64>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job { op, reply }) {
            let _ = job.reply.send(Err(StorageError::WriterGone));
        }
        rx
    }
}

/// Called with each committed batch: `(stream, op)` in stream order.
pub(crate) type OnCommit = Box<dyn Fn(&[(i64, &WriteOp)]) + Send + Sync>;

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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::storage::queue::{QueueKind, QueueWrite};

    fn event(id: &str) -> WriteOp {
        WriteOp::Event(Box::new(NewEvent {
            event_id: id.into(),
            room_id: "!r:x".into(),
            sender: "@a:x".into(),
            kind: "m.room.message".into(),
            state_key: None,
            depth: 1,
            origin_server_ts: 0,
            json: "{}".into(),
            membership: None,
            txn: None,
            redacts: None,
            new_room: None,
            history_visibility: None,
            room_version: "10",
            push: None,
            graph: Default::default(),
        }))
    }

    fn receipt() -> WriteOp {
        WriteOp::Receipt(ReceiptWrite {
            room_id: "!r:x".into(),
            user_id: "@a:x".into(),
            receipt_type: "m.read".into(),
            thread_id: String::new(),
            event_id: "$1".into(),
            ts: 0,
        })
    }

    fn account_data() -> WriteOp {
        WriteOp::AccountData(AccountDataWrite {
            user_id: "@a:x".into(),
            room_id: String::new(),
            kind: "m.tag".into(),
            content: "{}".into(),
        })
    }

    fn queue_step() -> WriteOp {
        WriteOp::Queue(QueueWrite {
            kind: QueueKind::Appservice,
            id: "a".into(),
            ack: None,
            position: Some(1),
            pending: None,
        })
    }

    fn name(op: &WriteOp) -> &'static str {
        match op {
            WriteOp::Event(_) => "event",
            WriteOp::Queue(_) => "queue",
            WriteOp::Plugin(_) => "plugin",
            WriteOp::AccountData(_) => "account data",
            WriteOp::Receipt(_) => "receipt",
            WriteOp::Keys(_) => "keys",
            WriteOp::ToDevice(_) => "to-device",
            WriteOp::Presence(_) => "presence",
            WriteOp::Side(_) => "side event",
            WriteOp::Backfilled { .. } => "backfilled event",
            WriteOp::Barrier => "barrier",
        }
    }

    #[tokio::test]
    async fn writes_take_dense_stream_positions_in_the_order_queued_and_queue_steps_take_none() {
        let (_dir, s) = crate::storage::temporary().await;
        s.queue(QueueKind::Appservice, "a", 0).await.unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let on_commit: OnCommit = {
            let heard = heard.clone();
            Box::new(move |batch: &[(i64, &WriteOp)]| {
                let mut heard = heard.lock().unwrap();
                heard.extend(batch.iter().map(|(stream, op)| (*stream, name(op))));
            })
        };
        let writer = Writer::start(s.clone(), 1, on_commit);
        let queued: Vec<_> = [
            event("$1"),
            queue_step(),
            receipt(),
            account_data(),
            event("$2"),
        ]
        .into_iter()
        .map(|op| writer.submit(op))
        .collect();
        let mut answers = Vec::new();
        for rx in queued {
            answers.push(rx.await.unwrap().unwrap());
        }

        assert_eq!(answers, [1, 0, 2, 3, 4]);
        assert_eq!(
            *heard.lock().unwrap(),
            [
                (1, "event"),
                (2, "receipt"),
                (3, "account data"),
                (4, "event")
            ]
        );
        assert_eq!(s.max_stream().await.unwrap(), 4);
        assert_eq!(s.event("$2").await.unwrap().map(|e| e.stream), Some(4));
        let queue = s.queue(QueueKind::Appservice, "a", 0).await.unwrap();
        assert_eq!(queue.position, 1);
        // The next write continues the stream where the batch left it.
        assert_eq!(writer.write(receipt()).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_flush_answers_once_what_was_queued_before_it_is_stored_and_takes_no_position() {
        let (_dir, s) = crate::storage::temporary().await;
        let writer = Writer::start(s.clone(), 1, Box::new(|_: &[(i64, &WriteOp)]| {}));
        let queued = writer.submit(event("$1"));
        writer.flush().await.unwrap();
        assert_eq!(s.event("$1").await.unwrap().map(|e| e.stream), Some(1));
        assert_eq!(queued.await.unwrap().unwrap(), 1);
        assert_eq!(writer.write(receipt()).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_batch_that_keeps_failing_stops_the_writer_and_nothing_after_it_commits() {
        let (_dir, s) = crate::storage::temporary().await;
        let heard = Arc::new(Mutex::new(0));
        let on_commit: OnCommit = {
            let heard = heard.clone();
            Box::new(move |_: &[(i64, &WriteOp)]| *heard.lock().unwrap() += 1)
        };
        let writer = Writer::start(s.clone(), 1, on_commit);
        // The same event id twice in one batch: the events table refuses it on every retry.
        let queued = [writer.submit(event("$1")), writer.submit(event("$1"))];
        let patience = Duration::from_secs(10);
        for rx in queued {
            let answer = tokio::time::timeout(patience, rx).await.unwrap().unwrap();
            assert!(matches!(answer, Err(StorageError::Failed(_))), "{answer:?}");
        }
        let later = tokio::time::timeout(patience, writer.write(receipt())).await;
        assert!(
            matches!(later, Ok(Err(StorageError::WriterGone))),
            "{later:?}"
        );
        assert_eq!(*heard.lock().unwrap(), 0);
        assert_eq!(s.max_stream().await.unwrap(), 0);
    }
}
